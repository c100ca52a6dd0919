//! The compact form in which both backends keep a message id on its event: a UUID in canonical text form (what most
//! tracking libraries send), with an optional short prefix such as `ajs-`, packs into a tag byte, the prefix and 16
//! bytes. The tag records the UUID's case so that the id reads back exactly as it was sent.

/// Ids that take more room than this, even packed, are kept as their hash only.
pub const MAX_KEPT_BYTES: usize = 24;
/// First byte of a packed id whose UUID is in lower case.
pub const TAG_LOWER_UUID: u8 = 1;
/// First byte of a packed id whose UUID is in upper case.
pub const TAG_UPPER_UUID: u8 = 2;

const UUID_LENGTH: usize = 36;
const UUID_DASHES: [usize; 4] = [8, 13, 18, 23];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    Lower,
    Upper,
}

/// Packs an id that ends in a UUID of one case; `None` for any other id.
pub fn pack_uuid(message_id: &str) -> Option<Vec<u8>> {
    let bytes = message_id.as_bytes();
    let (prefix, uuid) = bytes.split_at(bytes.len().checked_sub(UUID_LENGTH)?);
    let tag = match uuid_case(uuid)? {
        Case::Lower => TAG_LOWER_UUID,
        Case::Upper => TAG_UPPER_UUID,
    };
    let digits: Vec<u8> = uuid.iter().copied().filter(|&byte| byte != b'-').collect();
    let mut packed = Vec::with_capacity(1 + prefix.len() + 16);
    packed.push(tag);
    packed.extend_from_slice(prefix);
    for pair in digits.chunks_exact(2) {
        packed.push((nibble(pair[0]) << 4) | nibble(pair[1]));
    }
    Some(packed)
}

/// Reads back an id packed by [`pack_uuid`]; `None` when the bytes are not such a form.
pub fn unpack_uuid(packed: &[u8]) -> Option<String> {
    let (&tag, rest) = packed.split_first()?;
    let hex = match tag {
        TAG_LOWER_UUID => b"0123456789abcdef",
        TAG_UPPER_UUID => b"0123456789ABCDEF",
        _ => return None,
    };
    let (prefix, digits) = rest.split_at(rest.len().checked_sub(16)?);
    let mut text = String::from_utf8(prefix.to_vec()).ok()?;
    for (index, byte) in digits.iter().enumerate() {
        if [4, 6, 8, 10].contains(&index) {
            text.push('-');
        }
        text.push(char::from(hex[usize::from(byte >> 4)]));
        text.push(char::from(hex[usize::from(byte & 0x0f)]));
    }
    Some(text)
}

/// Whether the 36 bytes are a UUID in its canonical text form, all in one case.
fn uuid_case(uuid: &[u8]) -> Option<Case> {
    let mut case = None;
    for (index, &byte) in uuid.iter().enumerate() {
        if UUID_DASHES.contains(&index) {
            if byte != b'-' {
                return None;
            }
            continue;
        }
        let byte_case = match byte {
            b'0'..=b'9' => continue,
            b'a'..=b'f' => Case::Lower,
            b'A'..=b'F' => Case::Upper,
            _ => return None,
        };
        match case {
            None => case = Some(byte_case),
            Some(seen) if seen != byte_case => return None,
            Some(_) => {}
        }
    }
    // All digits: either case reads it back the same.
    Some(case.unwrap_or(Case::Lower))
}

fn nibble(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_pack_and_read_back() {
        let cases = [
            ("6f1c2c1e-9a3b-4b7e-8d2f-0c6a9f1e2d3b", Some(17)),
            ("6F1C2C1E-9A3B-4B7E-8D2F-0C6A9F1E2D3B", Some(17)),
            ("ajs-6f1c2c1e-9a3b-4b7e-8d2f-0c6a9f1e2d3b", Some(21)),
            ("00000000-0000-0000-0000-000000000000", Some(17)),
            ("6f1c2c1e-9a3b-4b7e-8d2f-0c6a9f1e2D3b", None),
            ("6f1c2c1e_9a3b-4b7e-8d2f-0c6a9f1e2d3b", None),
            ("m-1", None),
        ];
        for (message_id, size) in cases {
            let packed = pack_uuid(message_id);
            assert_eq!(packed.as_ref().map(Vec::len), size, "{message_id}");
            if let Some(packed) = packed {
                assert_eq!(unpack_uuid(&packed).as_deref(), Some(message_id));
            }
        }
        assert_eq!(unpack_uuid(b"m-1"), None);
    }
}
