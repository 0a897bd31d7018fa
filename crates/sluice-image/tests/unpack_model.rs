//! Property test: random stacks of layers (files, directories, symlinks — also as parents —,
//! whiteouts and opaque markers, in any order) unpacked by the real unpacker equal a small
//! in-memory model of OCI layer application.
//!
//! The model: entries apply in tar order; a parent path is resolved by following symlinks inside
//! the root (absolute targets restart at the root, `..` stops there), missing or non-directory
//! parents become directories (0755); an entry replaces whatever stood at its name; `.wh.<n>` and
//! `.wh..wh..opq` remove lower-layer entries at or under their target, never the entries (or the
//! parents of entries) their own layer wrote.

mod common;

use common::{image_tree, unpack_all, Layer, Node};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet, VecDeque};

type Path = Vec<String>;

#[derive(Debug, Clone)]
enum Op {
    File(Path, u8, u32),
    Dir(Path, u32),
    Symlink(Path, String),
    Whiteout(Path),
    Opaque(Path),
}

#[derive(Debug, Clone, PartialEq)]
enum M {
    File(Vec<u8>, u32),
    Dir(u32),
    Link(String),
}

#[derive(Default)]
struct Model {
    tree: BTreeMap<Path, M>,
    written: HashSet<Path>,
    ancestors: HashSet<Path>,
}

impl Model {
    fn remove_subtree(&mut self, path: &Path) {
        self.tree.retain(|k, _| !k.starts_with(path));
    }

    /// The physical directory `comps` names; `None` when absent (and not creating). `Err` on a loop.
    fn resolve(&mut self, comps: &[String], create: bool) -> Result<Option<Path>, ()> {
        let mut stack: Path = Vec::new();
        let mut queue: VecDeque<String> = comps.iter().cloned().collect();
        let mut links = 0;
        while let Some(c) = queue.pop_front() {
            if c == ".." {
                stack.pop();
                continue;
            }
            let mut p = stack.clone();
            p.push(c.clone());
            match self.tree.get(&p).cloned() {
                Some(M::Dir(_)) => stack.push(c),
                Some(M::Link(target)) => {
                    links += 1;
                    if links > 40 {
                        return Err(());
                    }
                    if target.starts_with('/') {
                        stack.clear();
                    }
                    for part in target
                        .split('/')
                        .filter(|s| !s.is_empty() && *s != ".")
                        .rev()
                    {
                        queue.push_front(part.to_string());
                    }
                }
                Some(M::File(..)) | None if create => {
                    self.tree.insert(p, M::Dir(0o755));
                    stack.push(c);
                }
                _ => return Ok(None),
            }
        }
        Ok(Some(stack))
    }

    fn mark(&mut self, path: &Path) {
        for depth in 1..path.len() {
            self.ancestors.insert(path[..depth].to_vec());
        }
        self.written.insert(path.clone());
    }

    fn prune(&mut self, path: &Path) {
        if !self.written.contains(path) && !self.ancestors.contains(path) {
            self.remove_subtree(path);
            return;
        }
        if let Some(M::Dir(_)) = self.tree.get(path) {
            let children: Vec<Path> = self
                .tree
                .keys()
                .filter(|k| k.len() == path.len() + 1 && k.starts_with(path))
                .cloned()
                .collect();
            for child in children {
                self.prune(&child);
            }
        }
    }

    fn apply(&mut self, layer: &[Op]) -> Result<(), ()> {
        self.written.clear();
        self.ancestors.clear();
        for op in layer {
            match op {
                Op::Whiteout(path) => {
                    let (name, parent) = path.split_last().unwrap();
                    if let Some(mut phys) = self.resolve(parent, false)? {
                        phys.push(name.clone());
                        self.prune(&phys);
                    }
                }
                Op::Opaque(dir) => {
                    let phys = self.resolve(dir, true)?.unwrap();
                    let children: Vec<Path> = self
                        .tree
                        .keys()
                        .filter(|k| k.len() == phys.len() + 1 && k.starts_with(&phys))
                        .cloned()
                        .collect();
                    for child in children {
                        self.prune(&child);
                    }
                    self.mark(&phys);
                }
                Op::File(path, ..) | Op::Dir(path, _) | Op::Symlink(path, _) => {
                    let (name, parent) = path.split_last().unwrap();
                    let mut phys = self.resolve(parent, true)?.unwrap();
                    phys.push(name.clone());
                    let keep_dir = matches!(op, Op::Dir(..))
                        && matches!(self.tree.get(&phys), Some(M::Dir(_)));
                    if !keep_dir {
                        self.remove_subtree(&phys);
                    }
                    let node = match op {
                        Op::File(_, byte, mode) => {
                            M::File(vec![*byte; usize::from(*byte)], *mode & 0o777)
                        }
                        Op::Dir(_, mode) => M::Dir(*mode | 0o555),
                        Op::Symlink(_, target) => M::Link(target.clone()),
                        _ => unreachable!(),
                    };
                    self.tree.insert(phys.clone(), node);
                    self.mark(&phys);
                }
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> BTreeMap<String, Node> {
        self.tree
            .iter()
            .map(|(k, v)| {
                let node = match v {
                    M::File(content, mode) => Node::File {
                        mode: *mode,
                        content: content.clone(),
                    },
                    M::Dir(mode) => Node::Dir { mode: *mode },
                    M::Link(target) => Node::Symlink {
                        target: target.clone(),
                    },
                };
                (k.join("/"), node)
            })
            .collect()
    }
}

fn path() -> impl Strategy<Value = Path> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..=3)
        .prop_map(|v| v.into_iter().map(str::to_string).collect())
}

fn op() -> impl Strategy<Value = Op> {
    let target = prop::sample::select(vec![
        "a",
        "b/c",
        "/a",
        "../b",
        "c/..",
        "/",
        "a/b",
        "missing/x",
        "b",
    ]);
    prop_oneof![
        4 => (path(), 1u8..20, prop::sample::select(vec![0o644u32, 0o755, 0o600])).prop_map(|(p, b, m)| Op::File(p, b, m)),
        3 => (path(), prop::sample::select(vec![0o755u32, 0o700, 0o750])).prop_map(|(p, m)| Op::Dir(p, m)),
        2 => (path(), target).prop_map(|(p, t)| Op::Symlink(p, t.to_string())),
        2 => path().prop_map(Op::Whiteout),
        1 => prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..=2)
            .prop_map(|v| Op::Opaque(v.into_iter().map(str::to_string).collect())),
    ]
}

fn tar(layer: &[Op]) -> Vec<u8> {
    let mut l = Layer::new();
    for op in layer {
        l = match op {
            Op::File(p, b, m) => l.file(&p.join("/"), &vec![*b; usize::from(*b)], *m),
            Op::Dir(p, m) => l.dir(&p.join("/"), *m),
            Op::Symlink(p, t) => l.symlink(&p.join("/"), t),
            Op::Whiteout(p) => l.whiteout(&p.join("/")),
            Op::Opaque(p) if p.is_empty() => l.file(".wh..wh..opq", b"", 0o644),
            Op::Opaque(p) => l.opaque(&p.join("/")),
        };
    }
    l.tar()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]
    #[test]
    fn unpacking_matches_the_model(layers in prop::collection::vec(prop::collection::vec(op(), 0..8), 1..5)) {
        let mut model = Model::default();
        let expected = layers.iter().try_for_each(|l| model.apply(l)).map(|()| model.snapshot());
        let tars: Vec<Vec<u8>> = layers.iter().map(|l| tar(l)).collect();
        let (tmp, result) = unpack_all(&tars);
        match expected {
            Ok(expected) => {
                prop_assert!(result.is_ok(), "unpack failed: {:?}", result.err());
                prop_assert_eq!(image_tree(&tmp.path().join("root")), expected);
            }
            Err(()) => prop_assert!(result.is_err(), "the model met a symlink loop, the unpacker did not"),
        }
    }
}
