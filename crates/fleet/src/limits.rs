//! What one input file may cost: a size cap for the fleet file and every file it
//! imports, and a nesting cap for fleet TOML checked by a linear scan before the
//! TOML parser runs.
//!
//! The TOML parser refuses very deep nesting itself, but only after it has read the
//! whole file into its own structures: a 9 MB file of nested tables took 455 to
//! 650 MB and several seconds to refuse. The scan here refuses it in one pass with
//! no allocation beyond a small stack.
//!
//! Limits, chosen so that no real fleet comes near them:
//!
//! * [`MAX_FILE_BYTES`] (256 MiB): the largest fleet rollcall is built for, a
//!   million hosts, is about 185 MB as TOML from `rollcall gen` (18.5 MB per
//!   100,000 hosts with 20,000 clusters) and about 50 MB as CSV. The cap leaves
//!   room above that and still bounds a single input's memory to a few GiB.
//! * [`MAX_TOML_DEPTH`] (32): the deepest structure a fleet file has is a gate or
//!   notify setting under an array of tables (`[[cluster]]` → `gate` → an
//!   expectation table → a value), about 6 levels.
//! * [`MAX_TOML_TABLES`] (8 million): the parser keeps every table at several
//!   hundred bytes to a kilobyte, and text can open one every two or three bytes
//!   (`[t1.t.t.t.t]`), so within the size cap alone a file could still cost over
//!   100 GiB. A generated fleet opens about 4 tables and arrays per host (4 million
//!   for a million hosts); 8 million bound a file's cost to about twice that.

use std::io::Read;
use std::path::Path;

/// Largest fleet file, inventory or CSV file accepted, in bytes (256 MiB).
pub const MAX_FILE_BYTES: usize = 256 << 20;
/// Deepest nesting of tables and arrays accepted in a fleet file.
pub const MAX_TOML_DEPTH: usize = 32;
/// Most tables and arrays a fleet file may open (every level of every table header
/// counts, `[[host]]` as two): the TOML parser keeps each one in memory at several
/// hundred bytes, so many small tables cost far more than their text.
pub const MAX_TOML_TABLES: usize = 8_000_000;

/// Why an input file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "the file is larger than {} MiB, the limit for a fleet file or an imported file",
        MAX_FILE_BYTES >> 20
    )]
    TooLarge,
    #[error("cannot read: the file is not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 { offset: usize },
}

/// Read a fleet file or an imported file as text, refusing one larger than
/// [`MAX_FILE_BYTES`] without reading more than one byte past the limit (so a
/// device such as `/dev/zero` or a file still growing is refused too).
pub fn read_input(path: &Path) -> Result<String, ReadError> {
    let file = std::fs::File::open(path)?;
    if file.metadata()?.len() > MAX_FILE_BYTES as u64 {
        return Err(ReadError::TooLarge);
    }
    let mut buf = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut buf)?;
    if buf.len() > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge);
    }
    String::from_utf8(buf).map_err(|e| ReadError::NotUtf8 {
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Where a fleet file's text breaks a limit, before it is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextLimit {
    TooLarge {
        bytes: usize,
    },
    /// Nesting goes deeper than [`MAX_TOML_DEPTH`] at this byte offset.
    TooDeep {
        offset: usize,
    },
    /// More than [`MAX_TOML_TABLES`] tables and arrays are open by this byte offset.
    TooManyTables {
        offset: usize,
    },
}

/// Check fleet text against [`MAX_FILE_BYTES`], [`MAX_TOML_DEPTH`] and
/// [`MAX_TOML_TABLES`].
pub fn check_toml(text: &str) -> Result<(), TextLimit> {
    if text.len() > MAX_FILE_BYTES {
        return Err(TextLimit::TooLarge { bytes: text.len() });
    }
    scan_toml(text.as_bytes(), MAX_TOML_DEPTH, MAX_TOML_TABLES)
}

/// One open `[` or `{` of a value, with the dotted-key levels of the key that owns it.
struct Open {
    inline_table: bool,
    key_dots: usize,
}

/// Scanner state: the nesting of tables and arrays at the current byte of TOML text.
#[derive(Default)]
struct Nesting {
    /// Levels of the current `[table]` or `[[array.of.tables]]` header.
    table: usize,
    /// Open arrays and inline tables.
    open: Vec<Open>,
    /// Levels held by `open` (each one, plus its owner's dotted-key levels).
    open_levels: usize,
    /// Dots in the key being read (or that owns the value being read).
    key_dots: usize,
    in_value: bool,
    in_header: bool,
    /// Tables and arrays opened so far.
    opened: usize,
}

impl Nesting {
    fn depth(&self) -> usize {
        self.table + self.open_levels + self.key_dots
    }

    fn push(&mut self, inline_table: bool) {
        self.opened += 1 + self.key_dots;
        self.open_levels += 1 + self.key_dots;
        self.open.push(Open {
            inline_table,
            key_dots: self.key_dots,
        });
        self.key_dots = 0;
        self.in_value = !inline_table;
    }

    fn pop(&mut self) {
        if let Some(o) = self.open.pop() {
            self.open_levels -= 1 + o.key_dots;
            self.key_dots = o.key_dots;
            self.in_value = true;
        }
    }

    fn in_inline_table(&self) -> bool {
        self.open.last().is_some_and(|o| o.inline_table)
    }

    /// Handle one structural byte at `b[i]`; returns how many bytes it took.
    fn byte(&mut self, b: &[u8], i: usize) -> usize {
        match b[i] {
            b'\n' if self.open.is_empty() => {
                self.key_dots = 0;
                self.in_value = false;
            }
            b'[' if self.open.is_empty() && !self.in_value && !self.in_header => {
                self.in_header = true;
                self.key_dots = 0;
                if b.get(i + 1) == Some(&b'[') {
                    self.table = 1; // the array of tables itself
                    return 2;
                }
                self.table = 0;
            }
            b']' if self.open.is_empty() && self.in_header => {
                self.in_header = false;
                self.table += 1 + self.key_dots;
                self.opened += self.table;
                self.key_dots = 0;
                self.in_value = true; // nothing but a comment may follow
                return if b.get(i + 1) == Some(&b']') { 2 } else { 1 };
            }
            b'.' if !self.in_value => self.key_dots += 1,
            b'=' if !self.in_value => {
                self.opened += self.key_dots;
                self.in_value = true;
            }
            b'[' => self.push(false),
            b'{' => self.push(true),
            b']' | b'}' => self.pop(),
            b',' if self.in_inline_table() => {
                self.key_dots = 0;
                self.in_value = false;
            }
            _ => {}
        }
        1
    }
}

/// Byte offset where TOML nesting (tables, arrays and dotted keys) first goes deeper
/// than `max`; see [`scan_toml`].
pub fn toml_too_deep(b: &[u8], max: usize) -> Option<usize> {
    match scan_toml(b, max, usize::MAX) {
        Err(TextLimit::TooDeep { offset }) => Some(offset),
        _ => None,
    }
}

/// Where TOML text first nests deeper than `max_depth` or has opened more than
/// `max_tables` tables and arrays, found by one pass that skips strings and
/// comments. Text that is not valid TOML is scanned all the same; the parser
/// reports what is wrong with it.
pub fn scan_toml(b: &[u8], max_depth: usize, max_tables: usize) -> Result<(), TextLimit> {
    let mut n = Nesting::default();
    let mut i = 0;
    while i < b.len() {
        i = match b[i] {
            b'"' | b'\'' => skip_string(b, i),
            b'#' => skip_comment(b, i),
            _ => {
                let step = n.byte(b, i);
                if n.depth() > max_depth {
                    return Err(TextLimit::TooDeep { offset: i });
                }
                if n.opened > max_tables {
                    return Err(TextLimit::TooManyTables { offset: i });
                }
                i + step
            }
        };
    }
    Ok(())
}

fn skip_comment(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| i + p)
}

/// The offset after the string starting at `b[i]` (basic or literal, one-line or
/// multi-line). An unterminated one-line string ends at the end of its line.
fn skip_string(b: &[u8], i: usize) -> usize {
    let q = b[i];
    let escapes = q == b'"';
    if b[i..].starts_with(&[q, q, q]) {
        let mut j = i + 3;
        while j < b.len() {
            if escapes && b[j] == b'\\' {
                j += 2;
            } else if b[j..].starts_with(&[q, q, q]) {
                // up to two more quotes may belong to the string: `""""` ends it too
                let mut end = j + 3;
                while end < b.len() && b[end] == q && end < j + 5 {
                    end += 1;
                }
                return end;
            } else {
                j += 1;
            }
        }
        return b.len();
    }
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' if escapes => j += 2,
            c if c == q => return j + 1,
            b'\n' => return j,
            _ => j += 1,
        }
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(text: &str, max: usize) -> bool {
        toml_too_deep(text.as_bytes(), max).is_none()
    }

    /// The smallest `max` the text passes.
    fn depth(text: &str) -> usize {
        (0..100).find(|&m| depth_ok(text, m)).unwrap()
    }

    #[test]
    fn depth_counts_tables_arrays_and_dotted_keys() {
        assert_eq!(depth("a = 1"), 0);
        assert_eq!(depth("a.b.c = 1"), 2);
        assert_eq!(depth("[a]\nb = 1"), 1);
        assert_eq!(depth("[a.b]\nc.d = 1"), 3);
        assert_eq!(depth("[[a.b]]\nc = 1"), 3);
        assert_eq!(depth("a = [[1], [2]]"), 2);
        assert_eq!(depth("a.b = {c.d = [1]}"), 4);
        assert_eq!(depth("a = [\n [\n  {b = [1.5, 2.5]}\n ]\n]\nc = 1"), 4);
        assert_eq!(depth("[x]\n[y]\nz = 1"), 1);
    }

    #[test]
    fn depth_skips_strings_and_comments() {
        assert_eq!(depth("a = \"[[[{{{\" # [[[[\nb = '[[[['"), 0);
        assert_eq!(depth("a = \"\"\"\n[[[\\\"\"\"\" \nb = '''[[['''"), 0);
        assert_eq!(depth("\"a.b.c\" = 1"), 0);
        assert_eq!(depth("a = \"x\\\"[[\"\nb = 1.5"), 0);
        assert_eq!(depth("a = 1979-05-27T07:32:00.999Z\nb = 1e5"), 0);
    }

    #[test]
    fn deep_nesting_is_found_at_the_first_byte_too_deep() {
        let text = format!("a = {}", "[".repeat(40));
        assert_eq!(toml_too_deep(text.as_bytes(), 32), Some(4 + 32));
        let text = format!("[{}a]", "a.".repeat(40));
        assert_eq!(toml_too_deep(text.as_bytes(), 32), Some(1 + 2 * 32 + 1));
        let text = format!("a = {}", "{b = ".repeat(40));
        assert!(toml_too_deep(text.as_bytes(), 32).is_some());
    }

    #[test]
    fn every_table_and_array_opened_counts() {
        let count = |t: &str| {
            (0..100)
                .find(|&m| scan_toml(t.as_bytes(), 99, m).is_ok())
                .unwrap()
        };
        assert_eq!(count("a = 1\nb.c = 2"), 1);
        assert_eq!(
            count("[[host]]\nid = 1\n[[host]]\nid = 2\ntags = [\"a\"]"),
            5
        );
        assert_eq!(count("[a.b]\nc = {d = [1, 2]}"), 4);
    }

    #[test]
    fn check_toml_names_the_offset_of_deep_nesting() {
        assert_eq!(check_toml("a = [[1]]"), Ok(()));
        let deep = format!("a = {}", "[".repeat(100));
        assert_eq!(check_toml(&deep), Err(TextLimit::TooDeep { offset: 36 }));
    }
}
