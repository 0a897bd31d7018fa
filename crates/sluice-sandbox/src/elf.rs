//! The `DT_SONAME` of a 64-bit little-endian ELF shared library: the name the dynamic loader
//! looks it up by (`libcuda.so.1` for `libcuda.so.535.104.05`). What `ldconfig` reads to make
//! its links; an image root is read-only, so the GPU plan makes those links itself. Reads the
//! program headers, the `PT_DYNAMIC` segment and the string table it points at, bounded.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: u64 = 0;
const DT_STRTAB: u64 = 5;
const DT_SONAME: u64 = 14;
/// Most program headers and dynamic entries read.
const MAX_ENTRIES: usize = 4096;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn read_at(f: &mut std::fs::File, offset: u64, len: usize) -> Option<Vec<u8>> {
    f.seek(SeekFrom::Start(offset)).ok()?;
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// The library's `DT_SONAME`, if it is an ELF64 LE file that has one.
pub(crate) fn soname(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let head = read_at(&mut f, 0, 64)?;
    if &head[..4] != b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return None;
    }
    let phoff = u64_at(&head, 32)?;
    let phentsize = usize::from(u16_at(&head, 54)?);
    let phnum = usize::from(u16_at(&head, 56)?).min(MAX_ENTRIES);
    if phentsize < 56 {
        return None;
    }
    let ph = read_at(&mut f, phoff, phentsize.checked_mul(phnum)?)?;
    let headers: Vec<(u32, u64, u64, u64)> = (0..phnum)
        .filter_map(|i| {
            let at = i * phentsize;
            // (type, offset, vaddr, filesz)
            Some((
                u32_at(&ph, at)?,
                u64_at(&ph, at + 8)?,
                u64_at(&ph, at + 16)?,
                u64_at(&ph, at + 32)?,
            ))
        })
        .collect();
    let &(_, dyn_off, _, dyn_size) = headers.iter().find(|h| h.0 == PT_DYNAMIC)?;
    let count = usize::try_from(dyn_size / 16).ok()?.min(MAX_ENTRIES);
    let dynamic = read_at(&mut f, dyn_off, count * 16)?;
    let (mut strtab, mut soname) = (None, None);
    for i in 0..count {
        let tag = u64_at(&dynamic, i * 16)?;
        let val = u64_at(&dynamic, i * 16 + 8)?;
        match tag {
            DT_NULL => break,
            DT_STRTAB => strtab = Some(val),
            DT_SONAME => soname = Some(val),
            _ => {}
        }
    }
    let (strtab, soname) = (strtab?, soname?);
    // The string table's address is virtual: map it to a file offset through its PT_LOAD.
    let &(_, off, vaddr, _) = headers
        .iter()
        .find(|h| h.0 == PT_LOAD && h.2 <= strtab && strtab - h.2 < h.3)?;
    let name = read_at(&mut f, off + (strtab - vaddr) + soname, 256)?;
    let end = name.iter().position(|&b| b == 0)?;
    String::from_utf8(name[..end].to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_c_librarys_soname_is_read_and_non_elf_files_have_none() {
        let out = std::process::Command::new("ldconfig").arg("-p").output();
        let text = out
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let libc = text
            .lines()
            .filter(|l| l.contains("x86-64"))
            .find_map(|l| l.trim().strip_prefix("libc.so.6 ")?.split("=> ").nth(1))
            .map(str::trim);
        match libc {
            Some(p) => assert_eq!(soname(Path::new(p)).as_deref(), Some("libc.so.6")),
            None => eprintln!("SKIPPED the libc check: ldconfig -p does not list libc.so.6"),
        }
        let t = tempfile::tempdir().expect("tempdir");
        let f = t.path().join("x.so.1");
        std::fs::write(&f, b"\x7fELF not really").expect("write");
        assert_eq!(soname(&f), None);
        assert_eq!(soname(&t.path().join("missing")), None);
    }
}
