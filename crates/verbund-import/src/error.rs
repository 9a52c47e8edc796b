//! Why an import was refused, with the line to look at, so that a user can fix the file.

/// An input file that cannot be imported. Line numbers are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The input holds no records at all.
    #[error("the file contains no records")]
    Empty,

    /// A line is not valid UTF-8 (e.g. a Latin-1 edition, or a file cut mid-character).
    #[error("line {line}: not valid UTF-8")]
    InvalidUtf8 { line: u64 },

    /// The input could not be read.
    #[error("line {line}: cannot read the input: {message}")]
    Read { line: u64, message: String },

    /// A fixed-width record is shorter or longer than the format prescribes; a file cut
    /// mid-record ends in such a line.
    #[error("line {line}: record is {found} characters long, expected {expected}")]
    RecordLength {
        line: u64,
        found: usize,
        expected: usize,
    },

    /// The record type (Satzart) is not one of those the format defines.
    #[error("line {line}: unknown Satzart `{satzart}`")]
    UnknownSatzart { line: u64, satzart: String },

    /// A key or number field holds something other than digits.
    #[error("line {line}: {field} `{value}` must consist of digits")]
    NotDigits {
        line: u64,
        field: &'static str,
        value: String,
    },

    /// A Land key outside 01 (Schleswig-Holstein) to 16 (Thüringen).
    #[error("line {line}: Land key `{land}` is not one of 01–16")]
    UnknownLand { line: u64, land: String },

    /// A record's Gebietsstand differs from the first record's: two editions are mixed.
    #[error("line {line}: Gebietsstand `{found}` differs from `{expected}` of the first record")]
    MixedGebietsstand {
        line: u64,
        found: String,
        expected: String,
    },

    /// Two records carry the same key.
    #[error("line {line}: key `{key}` was already defined on line {first_line}")]
    DuplicateKey {
        line: u64,
        key: String,
        first_line: u64,
    },

    /// A Kreis names a Land that has no record of its own.
    #[error("line {line}: Kreis `{kreis}` belongs to Land `{land}`, which is missing")]
    MissingLand {
        line: u64,
        kreis: String,
        land: String,
    },

    /// A Gemeinde names a Kreis that has no record of its own.
    #[error("line {line}: Gemeinde `{gemeinde}` belongs to Kreis `{kreis}`, which is missing")]
    MissingKreis {
        line: u64,
        gemeinde: String,
        kreis: String,
    },

    /// The CSV header is absent or names other columns.
    #[error("line 1: header must be `{expected}`, found `{found}`")]
    Header { expected: String, found: String },

    /// A CSV row has more or fewer fields than the header.
    #[error("line {line}: row has {found} fields, expected {expected}")]
    FieldCount {
        line: u64,
        found: usize,
        expected: usize,
    },

    /// A required CSV field is empty.
    #[error("line {line}: field `{field}` must not be empty")]
    EmptyField { line: u64, field: &'static str },

    /// An id appears in two rows.
    #[error("line {line}: id `{id}` was already defined on line {first_line}")]
    DuplicateId {
        line: u64,
        id: String,
        first_line: u64,
    },

    /// The CSV is malformed (e.g. an unterminated quote).
    #[error("line {line}: malformed CSV: {message}")]
    Csv { line: u64, message: String },
}

pub type Result<T, E = ImportError> = std::result::Result<T, E>;
