//! Reading `-f FILE`: YAML or JSON holding one object, a list of objects, or several YAML
//! documents separated by `---`; and applying the objects one by one, stopping at the
//! first failure with a report of what was applied before it.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::output::{emit_line, print_data, Format};

/// One object from a file, with where it was found.
pub struct Entry {
    pub value: Value,
    /// E.g. `document 2, item 3`; empty for a file holding a single object.
    place: String,
}

/// The objects of one file, in order.
pub struct Manifest {
    /// The file as the user named it.
    pub file: String,
    pub entries: Vec<Entry>,
    /// Whether the file held exactly one object, not a list (decides the JSON shape).
    pub single: bool,
}

impl Manifest {
    /// Reads and parses a file (`-` is stdin); refuses it whole if any document is not
    /// valid YAML or JSON, so that nothing is applied from a broken file.
    pub fn read(path: &Path) -> anyhow::Result<Manifest> {
        let stdin = path == Path::new("-");
        let file = if stdin {
            "standard input".to_string()
        } else {
            path.display().to_string()
        };
        let text = if stdin {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read standard input")?;
            s
        } else {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {file}"))?
        };
        Self::parse(&file, &text)
    }

    pub fn parse(file: &str, text: &str) -> anyhow::Result<Manifest> {
        let mut docs = Vec::new();
        for de in serde_yaml_ng::Deserializer::from_str(text) {
            let v = Value::deserialize(de)
                .map_err(|e| anyhow!("{file} is not valid YAML or JSON: {e}"))?;
            docs.push(v);
        }
        let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
        let several_docs = docs.len() > 1;
        let mut entries = Vec::new();
        let mut single = false;
        for (d, doc) in docs.into_iter().enumerate() {
            let doc_place = if several_docs {
                format!("document {}", d + 1)
            } else {
                String::new()
            };
            match doc {
                Value::Object(_) => {
                    single = !several_docs;
                    entries.push(Entry {
                        value: doc,
                        place: doc_place,
                    });
                }
                Value::Array(items) => {
                    for (i, item) in items.into_iter().enumerate() {
                        let place = join_place(&doc_place, &format!("item {}", i + 1));
                        if !item.is_object() {
                            anyhow::bail!(
                                "{file} ({place}): expected an object, found {}",
                                kind(&item)
                            );
                        }
                        entries.push(Entry { value: item, place });
                    }
                }
                other => {
                    let place = if several_docs {
                        format!(" ({doc_place})")
                    } else {
                        String::new()
                    };
                    anyhow::bail!(
                        "{file}{place}: expected an object or a list of objects, found {}",
                        kind(&other)
                    );
                }
            }
        }
        if entries.is_empty() {
            anyhow::bail!("{file} holds no objects");
        }
        Ok(Manifest {
            file: file.to_string(),
            entries,
            single,
        })
    }

    /// Converts every entry into `T`, refusing unknown fields with their path; all are
    /// checked before anything is sent.
    pub fn objects<T: DeserializeOwned>(&self) -> anyhow::Result<Vec<T>> {
        self.entries.iter().map(|e| self.convert(e)).collect()
    }

    pub fn convert<T: DeserializeOwned>(&self, e: &Entry) -> anyhow::Result<T> {
        serde_path_to_error::deserialize(&e.value).map_err(|err| {
            let pointer = pointer(err.path());
            let name = e
                .value
                .get("name")
                .or_else(|| e.value.get("offering").and_then(|o| o.get("name")))
                .and_then(Value::as_str);
            let what = match name {
                Some(n) => join_place(&e.place, &format!("`{n}`")),
                None => e.place.clone(),
            };
            let at = if what.is_empty() {
                String::new()
            } else {
                format!(" ({what})")
            };
            let field = if pointer.is_empty() {
                String::new()
            } else {
                format!("{pointer}: ")
            };
            let message = err.into_inner().to_string();
            let server_set = [
                "id",
                "created_at",
                "updated_at",
                "latest_version",
                "published_at",
            ];
            let hint = match pointer.rsplit('/').next() {
                Some(last)
                    if message.starts_with("unknown field") && server_set.contains(&last) =>
                {
                    "; the server sets this field, leave it out of the file"
                }
                _ => "",
            };
            anyhow!("{}{at}: {field}{message}{hint}", self.file)
        })
    }
}

fn join_place(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}, {b}")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A deserialization path as a JSON pointer, the way the server names fields.
fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => out.push_str(&format!("/{key}")),
            Segment::Enum { variant } => out.push_str(&format!("/{variant}")),
            Segment::Unknown => {}
        }
    }
    out
}

/// Applies objects in order, prints a line per object (or the answers as JSON/YAML at the
/// end), and on the first failure reports what had been applied before it.
pub struct Applier<'a> {
    manifest: &'a Manifest,
    format: Format,
    done: Vec<String>,
    results: Vec<Value>,
}

impl<'a> Applier<'a> {
    pub fn new(manifest: &'a Manifest, format: Format) -> Self {
        Applier {
            manifest,
            format,
            done: Vec::new(),
            results: Vec::new(),
        }
    }

    /// Records a success: `line` is printed in table mode, `result` kept for JSON/YAML.
    pub fn applied(&mut self, label: String, line: String, result: Value) -> anyhow::Result<()> {
        if self.format == Format::Table {
            emit_line(&line)?;
        }
        self.done.push(label);
        self.results.push(result);
        Ok(())
    }

    /// Turns the failure of object `index` into the error that ends the command, naming
    /// what was applied before it; JSON/YAML output of those is printed first.
    pub fn failed(&mut self, index: usize, label: &str, err: anyhow::Error) -> anyhow::Error {
        if !self.results.is_empty() {
            let _ = self.print_results();
        }
        let n = self.manifest.entries.len();
        let before = if self.done.is_empty() {
            "nothing was applied".to_string()
        } else {
            format!("applied before it: {}", self.done.join(", "))
        };
        let rest = n - index - 1;
        let after = if rest > 0 {
            format!("; {rest} after it not attempted")
        } else {
            String::new()
        };
        err.context(format!(
            "stopped at {label}, object {} of {n} in {} ({before}{after})",
            index + 1,
            self.manifest.file
        ))
    }

    fn print_results(&self) -> anyhow::Result<()> {
        match self.format {
            Format::Table => Ok(()),
            _ => match self.results.as_slice() {
                [only] if self.manifest.single => print_data(self.format, only),
                all => print_data(self.format, all),
            },
        }
    }

    pub fn finish(self) -> anyhow::Result<()> {
        self.print_results()
    }
}

/// The path given with `-f`.
#[derive(Debug, Clone, clap::Args)]
pub struct FileArg {
    /// YAML or JSON file with one object, a list, or `---`-separated documents (`-` for
    /// stdin).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;
    use verbund_domain::directory::ProviderSpec;

    const PROVIDER: &str = "name: p\ndisplay_name: P\nlegal_form: AöR\npublic_law: true\n\
                            seat: {city: Kiel, country: DE}\njurisdictions: [DE]\n";

    #[test]
    fn one_object_a_list_or_several_documents() {
        let one = Manifest::parse("f", PROVIDER).unwrap();
        assert!(one.single);
        assert_eq!(one.entries.len(), 1);
        let list = Manifest::parse("f", "[{a: 1}, {b: 2}]").unwrap();
        assert!(!list.single);
        assert_eq!(list.entries.len(), 2);
        let docs = Manifest::parse("f", "---\na: 1\n---\n- b: 2\n- c: 3\n---\n").unwrap();
        assert_eq!(docs.entries.len(), 3);
        assert_eq!(docs.entries[2].place, "document 2, item 2");
        let json = Manifest::parse("f", r#"{"a": 1}"#).unwrap();
        assert!(json.single);
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let e = Manifest::parse("sites.yaml", "a: 1\nb: [\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("sites.yaml is not valid YAML or JSON"), "{e}");
        assert!(e.contains("line"), "{e}");
        let e = Manifest::parse("f", "- 1\n").err().unwrap().to_string();
        assert_eq!(e, "f (item 1): expected an object, found a number");
        assert!(Manifest::parse("f", "# nothing\n").is_err());
    }

    #[test]
    fn unknown_fields_are_named_by_pointer() {
        let text = format!("{PROVIDER}seat2: x\n");
        let m = Manifest::parse("p.yaml", &text).unwrap();
        let e = m.objects::<ProviderSpec>().err().unwrap().to_string();
        assert!(e.starts_with("p.yaml (`p`): "), "{e}");
        assert!(e.contains("unknown field `seat2`"), "{e}");
        let text = PROVIDER.replace("country: DE}", "country: DE, town: x}");
        let m = Manifest::parse("p.yaml", &text).unwrap();
        let e = m.objects::<ProviderSpec>().err().unwrap().to_string();
        assert!(e.contains("/seat/town: unknown field `town`"), "{e}");
        let text = format!("{PROVIDER}created_at: 2026-01-01T00:00:00Z\n");
        let m = Manifest::parse("p.yaml", &text).unwrap();
        let e = m.objects::<ProviderSpec>().err().unwrap().to_string();
        assert!(
            e.ends_with("the server sets this field, leave it out of the file"),
            "{e}"
        );
    }
}
