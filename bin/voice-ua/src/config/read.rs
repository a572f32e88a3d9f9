//! Reading the files the configuration names (secrets, prompts, audio) with a size
//! limit, so a device or FIFO given by mistake is an error, not an endless read.

use std::path::Path;

/// The largest secret file (password, key) read: a line of text.
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Read a whole file of at most `limit` bytes: a device or a FIFO given by mistake
/// (`/dev/zero`) is an error, not an endless read.
pub fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut out = Vec::new();
    std::fs::File::open(path)?.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes, is it the right file?"),
        ));
    }
    Ok(out)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_text_bounded(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_bounded(path, limit)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}
