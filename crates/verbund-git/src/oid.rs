//! Git object names: the SHA-1 of an object's kind, length and bytes, computed in
//! process so that trees can be compared and written without asking git.

use std::fmt;
use std::str::FromStr;

use sha1::{Digest, Sha1};

use crate::error::Error;

/// The name of a Git object (blob, tree or commit): 20 bytes of SHA-1, shown as 40
/// lowercase hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Oid(pub [u8; 20]);

impl Oid {
    /// The name of the tree without entries, which Git never stores at a path below the
    /// root: an absent folder and an empty one are the same thing.
    pub const EMPTY_TREE: Oid = Oid([
        0x4b, 0x82, 0x5d, 0xc6, 0x42, 0xcb, 0x6e, 0xb9, 0xa0, 0x60, 0xe5, 0x4b, 0xf8, 0xd6, 0x92,
        0x88, 0xfb, 0xee, 0x49, 0x04,
    ]);

    /// The all-zero name git uses for "no object" (an unborn branch in `update-ref`).
    pub const ZERO: Oid = Oid([0; 20]);

    /// The 40 lowercase hexadecimal digits git writes for this name, built in one buffer
    /// (formatting digit by digit into an unbuffered pipe made one write per byte).
    pub fn hex(&self) -> HexOid {
        let digit = |nibble: u8| char::from_digit(u32::from(nibble), 16).map_or(b'0', |c| c as u8);
        let mut out = [0u8; 40];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0) {
            pair.copy_from_slice(&[digit(byte >> 4), digit(byte & 0xf)]);
        }
        HexOid(out)
    }

    /// The name of an object of `kind` with content `data`, exactly as git computes it.
    pub(crate) fn hash(kind: Kind, data: &[u8]) -> Oid {
        let mut hasher = Sha1::new();
        hasher.update(kind.name().as_bytes());
        hasher.update(b" ");
        hasher.update(decimal(data.len(), &mut [0u8; 20]));
        hasher.update([0u8]);
        hasher.update(data);
        Oid(hasher.finalize().into())
    }

    /// The 40 hexadecimal digits.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

/// `n` in decimal, written into the end of `digits` (enough for any `u64`) without
/// allocating.
fn decimal(mut n: usize, digits: &mut [u8; 20]) -> &[u8] {
    let mut start = digits.len();
    for (at, digit) in digits.iter_mut().enumerate().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
        start = at;
        if n == 0 {
            break;
        }
    }
    digits.get(start..).unwrap_or_default()
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

/// An object name as 40 hexadecimal digits, without allocating (see [`Oid::hex`]).
#[derive(Clone, Copy)]
pub struct HexOid([u8; 40]);

impl std::ops::Deref for HexOid {
    type Target = str;

    fn deref(&self) -> &str {
        // Only ASCII digits and letters are ever written into it.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Oid({self})")
    }
}

impl FromStr for Oid {
    type Err = Error;

    /// Parses 40 hexadecimal digits (either case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || Error::InvalidOid(s.to_owned());
        let bytes = s.as_bytes();
        if bytes.len() != 40 {
            return Err(invalid());
        }
        let mut oid = [0u8; 20];
        for (byte, pair) in oid.iter_mut().zip(bytes.chunks_exact(2)) {
            let [high, low] = pair else {
                return Err(invalid());
            };
            *byte =
                hex_digit(*high).ok_or_else(invalid)? << 4 | hex_digit(*low).ok_or_else(invalid)?;
        }
        Ok(Oid(oid))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The kinds of object this crate writes and reads; the discriminant is the pack type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Commit = 1,
    Tree = 2,
    Blob = 3,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Commit => "commit",
            Kind::Tree => "tree",
            Kind::Blob => "blob",
        }
    }

    pub(crate) fn from_pack_type(t: u8) -> Option<Kind> {
        match t {
            1 => Some(Kind::Commit),
            2 => Some(Kind::Tree),
            3 => Some(Kind::Blob),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_like_git() {
        assert_eq!(Oid::hash(Kind::Tree, b""), Oid::EMPTY_TREE);
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            Oid::hash(Kind::Blob, b"hello\n").to_string(),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        let oid: Oid = "CE013625030ba8dba906f756967f9e9ca394464a".parse().unwrap();
        assert_eq!(oid, Oid::hash(Kind::Blob, b"hello\n"));
        assert!("xyz".parse::<Oid>().is_err());
        assert!("ce013625030ba8dba906f756967f9e9ca394464g"
            .parse::<Oid>()
            .is_err());
    }

    #[test]
    fn malformed_hex_is_an_invalid_oid() {
        let valid = "ce013625030ba8dba906f756967f9e9ca394464a";
        for text in [
            "",
            &valid[..39],
            &valid[..1],
            &format!("{valid}0"),
            &format!("{}-", &valid[..39]),
            // 40 bytes, but not ASCII.
            &"é".repeat(20),
            &format!("{}é", &valid[..38]),
        ] {
            assert!(
                matches!(text.parse::<Oid>(), Err(Error::InvalidOid(t)) if t == text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_length_of_the_content_is_hashed_in_decimal() {
        // `printf '' | git hash-object --stdin` and a ten-byte blob.
        assert_eq!(
            Oid::hash(Kind::Blob, b"").to_string(),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
        assert_eq!(
            Oid::hash(Kind::Blob, b"0123456789").to_string(),
            "ad471007bd7f5983d273b9584e5629230150fd54"
        );
    }
}
