//! Names from a layer: a tar path or link target turned into the components it names beneath the
//! root. A leading `/` is stripped (paths are relative to the root); NUL bytes, `..` components,
//! over-long names and over-long paths are refused, so nothing can name a place above the root.

use crate::error::ImageError;

/// The longest path accepted (Linux `PATH_MAX`).
pub const MAX_PATH: usize = 4096;
/// The longest single name accepted (Linux `NAME_MAX`).
pub const MAX_NAME: usize = 255;

/// The components of `raw` beneath the root (empty for the root itself).
pub fn components(raw: &[u8]) -> Result<Vec<Vec<u8>>, ImageError> {
    let refuse = |reason| ImageError::UnsafePath {
        path: shown(raw),
        reason,
    };
    if raw.contains(&0) {
        return Err(refuse("contains a NUL byte"));
    }
    if raw.len() > MAX_PATH {
        return Err(refuse("longer than 4096 bytes"));
    }
    let mut out = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(refuse("has a `..` component")),
            name if name.len() > MAX_NAME => return Err(refuse("a name is longer than 255 bytes")),
            name => out.push(name.to_vec()),
        }
    }
    Ok(out)
}

/// A path for messages: lossily decoded, cut after 200 bytes.
pub fn shown(raw: &[u8]) -> String {
    let cut = &raw[..raw.len().min(200)];
    let mut out = String::from_utf8_lossy(cut).into_owned();
    if raw.len() > cut.len() {
        out.push_str(&format!("… ({} bytes)", raw.len()));
    }
    out
}

/// Splits a symlink target into components for resolution beneath the root: `..` is kept (the
/// resolver clamps it at the root), empty and `.` parts are dropped.
pub fn link_components(target: &[u8]) -> Vec<Vec<u8>> {
    target
        .split(|b| *b == b'/')
        .filter(|part| !part.is_empty() && *part != b".")
        .map(<[u8]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_root_and_dots() {
        assert_eq!(
            components(b"/a/./b//c/").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        assert!(components(b"./").unwrap().is_empty());
        assert!(components(b"/").unwrap().is_empty());
    }

    #[test]
    fn refuses_escapes_and_bad_names() {
        for bad in [&b"../x"[..], b"a/../../x", b"/..", b"a\0b", b".."] {
            assert!(
                components(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(components(&vec![b'a'; 256]).is_err());
        let long: Vec<u8> = b"a/".repeat(2049);
        assert!(components(&long).is_err());
        assert_eq!(
            link_components(b"/../a/./b"),
            vec![b"..".to_vec(), b"a".to_vec(), b"b".to_vec()]
        );
    }
}
