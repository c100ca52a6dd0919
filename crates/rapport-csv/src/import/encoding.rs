//! The text encoding of an imported file. Excel saves "CSV UTF-8" with a byte order mark, and plain "CSV" in the
//! system's ANSI code page, which on Chinese Windows is GBK; both must import without the user saying which.
//!
//! The rule: a byte order mark decides (UTF-8, UTF-16LE, UTF-16BE). Without one, the first non-ASCII bytes of the
//! file decide: valid UTF-8 means UTF-8, anything else is read as GB18030, the superset of GBK and GB2312. Looking
//! only at the first non-ASCII bytes is lossless because ASCII reads the same in both encodings.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

use encoding_rs::{Encoding, GB18030, UTF_8};
use encoding_rs_io::DecodeReaderBytesBuilder;

/// How many bytes from the first non-ASCII byte on are checked for UTF-8.
const SNIFF_WINDOW: usize = 64 * 1024;
const SCAN_BUFFER: usize = 64 * 1024;

/// The encoding an import reads its file in, and why.
#[derive(Debug, Clone, Copy)]
pub struct DetectedEncoding {
    pub encoding: &'static Encoding,
    pub reason: EncodingReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingReason {
    ByteOrderMark,
    ValidUtf8,
    OnlyAscii,
    NotUtf8,
    Chosen,
}

impl DetectedEncoding {
    /// For the operator: `GBK/GB18030 (not valid UTF-8)`.
    pub fn describe(&self) -> String {
        let name = self.encoding.name();
        match self.reason {
            EncodingReason::ByteOrderMark => format!("{name} (byte order mark)"),
            EncodingReason::ValidUtf8 => "UTF-8".to_owned(),
            EncodingReason::OnlyAscii => "UTF-8 (plain ASCII)".to_owned(),
            EncodingReason::NotUtf8 => "GBK/GB18030 (not valid UTF-8)".to_owned(),
            EncodingReason::Chosen => format!("{name} (--encoding)"),
        }
    }
}

/// An `--encoding` label such as `gbk`, `gb18030`, `utf-8` or `windows-1252` (the WHATWG labels).
pub fn encoding_for_label(label: &str) -> Option<&'static Encoding> {
    Encoding::for_label(label.trim().as_bytes())
}

/// Decides the file's encoding and leaves the file at its start. Reads up to the first non-ASCII byte plus a
/// window, so a pure ASCII file is read to its end once, in constant memory.
pub fn detect(file: &mut File, chosen: Option<&'static Encoding>) -> io::Result<DetectedEncoding> {
    let mut head = [0_u8; 3];
    let head_len = read_up_to(file, &mut head)?;
    file.seek(SeekFrom::Start(0))?;
    if let Some((encoding, _)) = Encoding::for_bom(&head[..head_len]) {
        return Ok(DetectedEncoding { encoding, reason: EncodingReason::ByteOrderMark });
    }
    if let Some(encoding) = chosen {
        return Ok(DetectedEncoding { encoding, reason: EncodingReason::Chosen });
    }
    let window = first_non_ascii_window(file)?;
    file.seek(SeekFrom::Start(0))?;
    let (encoding, reason) = if window.is_empty() {
        (UTF_8, EncodingReason::OnlyAscii)
    } else if looks_like_utf8(&window) {
        (UTF_8, EncodingReason::ValidUtf8)
    } else {
        (GB18030, EncodingReason::NotUtf8)
    };
    Ok(DetectedEncoding { encoding, reason })
}

/// The file as UTF-8 bytes, without a byte order mark. UTF-8 passes through untouched, so that invalid sequences
/// reach the CSV reader and are reported per row instead of being replaced silently.
pub fn utf8_reader<R: Read>(source: R, detected: DetectedEncoding) -> impl Read {
    let explicit = (detected.encoding != UTF_8).then_some(detected.encoding);
    DecodeReaderBytesBuilder::new()
        .encoding(explicit)
        .utf8_passthru(true)
        .strip_bom(true)
        .bom_override(true)
        .build(source)
}

/// True when the bytes are UTF-8, allowing a character cut off at the end of the window.
fn looks_like_utf8(window: &[u8]) -> bool {
    match std::str::from_utf8(window) {
        Ok(_) => true,
        Err(error) => error.error_len().is_none(),
    }
}

fn first_non_ascii_window(file: &mut File) -> io::Result<Vec<u8>> {
    let mut reader = BufReader::with_capacity(SCAN_BUFFER, file);
    let mut window = Vec::new();
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(window);
        }
        let consumed = if window.is_empty() {
            match chunk.iter().position(|byte| !byte.is_ascii()) {
                None => chunk.len(),
                Some(start) => {
                    let end = chunk.len().min(start + SNIFF_WINDOW);
                    window.extend_from_slice(&chunk[start..end]);
                    end
                }
            }
        } else {
            let take = chunk.len().min(SNIFF_WINDOW - window.len());
            window.extend_from_slice(&chunk[..take]);
            take
        };
        reader.consume(consumed);
        if window.len() >= SNIFF_WINDOW {
            return Ok(window);
        }
    }
}

fn read_up_to(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            read => filled += read,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_recognised_even_when_the_window_cuts_a_character() {
        let text = "邮箱,姓名".as_bytes();
        assert!(looks_like_utf8(text));
        assert!(looks_like_utf8(&text[..4]));
        let (gbk, _, _) = GB18030.encode("邮箱,姓名");
        assert!(!looks_like_utf8(&gbk));
    }
}
