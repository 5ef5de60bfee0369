//! Reading a whole input file with a size limit.
//!
//! `std::fs::read` trusts the file it is given: `/dev/zero` or a pipe that
//! never ends grows the buffer until the system kills the process, and a
//! folder fails with a bare OS message. Every text, JSON, vocabulary and
//! merges file the program reads whole goes through [`read_capped`]
//! instead, which refuses folders and devices up front and stops reading
//! one byte past the limit. Pipes are allowed, so `--data <(zcat x.gz)`
//! works. Errors carry no path: the callers' error types add it.

use std::io::{self, Read};
use std::path::Path;

/// The most bytes read from a text corpus or data file (1 GiB).
pub const TEXT_LIMIT: u64 = 1 << 30;

/// The most bytes read from a JSON, vocabulary or merges file (256 MiB;
/// GPT-2's `vocab.json` is 1 MiB).
pub const JSON_LIMIT: u64 = 256 << 20;

/// The bytes of `path`, refusing a folder, a device, or more than `limit`
/// bytes.
pub fn read_capped(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    // Checked before opening: opening a device can have effects, and the
    // size of a regular file tells at once whether it is too large.
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "is a folder, not a file"));
    }
    if !meta.is_file() && !is_pipe(&meta) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "is not a regular file or a pipe"));
    }
    if meta.len() > limit {
        return Err(too_large(limit));
    }
    let mut bytes = Vec::new();
    // One byte more than allowed tells a file at the limit from a longer
    // one (a pipe has no size, and a file can grow while it is read).
    std::fs::File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

/// [`read_capped`] for a file that must be UTF-8 text.
pub fn read_capped_string(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_capped(path, limit)?).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        io::Error::new(io::ErrorKind::InvalidData, format!("not UTF-8 text (byte {at})"))
    })
}

fn too_large(limit: u64) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("larger than {limit} bytes, the most this program reads"))
}

#[cfg(unix)]
fn is_pipe(meta: &std::fs::Metadata) -> bool {
    std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type())
}

#[cfg(not(unix))]
fn is_pipe(_: &std::fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_folders_devices_and_files_past_the_limit() {
        let dir = std::env::temp_dir().join(format!("scratchgpt-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f.txt");
        std::fs::write(&file, "hello").unwrap();
        assert_eq!(read_capped(&file, 5).unwrap(), b"hello");
        assert!(read_capped(&file, 4).unwrap_err().to_string().contains("larger than 4 bytes"));
        assert!(read_capped(&dir, 100).unwrap_err().to_string().contains("is a folder"));
        if Path::new("/dev/zero").exists() {
            let e = read_capped(Path::new("/dev/zero"), 100).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        std::fs::write(&file, [b'a', 0xff]).unwrap();
        assert!(read_capped_string(&file, 100).unwrap_err().to_string().contains("byte 1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
