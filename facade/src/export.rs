//! Export and import as JSON lines, with the entities and relations of an agent-memory
//! knowledge graph, and a check that every relation's two ends exist.
//!
//! This sits on the public surface of [`Store`]: export is one snapshot scan, import is
//! ordinary atomic [`Batch`]es, so every tier, rule and receipt behaves as for other writes.
//!
//! # Format
//!
//! UTF-8, one compact JSON object per line, each ended by `\n` (import also takes `\r\n`, a
//! byte-order mark on the first line and blank lines, which it skips). Three kinds of line:
//!
//! ```text
//! {"type":"entity","name":"chart_123_desired_outcome","entityType":"desired_outcome","observations":["Build comprehensive Django web application"],"metadata":{"chartId":"chart_123","context":"learning","dueDate":"2025-12-01"}}
//! {"type":"relation","from":"chart_123_desired_outcome","to":"chart_123_current_reality","relationType":"has_tension","metadata":{"createdAt":"2025-11-17T10:30:00Z"}}
//! {"type":"kv","key":"task:1","value":"{\"title\":\"ship it\"}"}
//! {"type":"kv","key_base64":"/w==","value_base64":"AAE="}
//! ```
//!
//! - `entity`: `name` and `entityType` non-empty strings, `observations` an array of strings
//!   (possibly empty), `metadata` an object when present.
//! - `relation`: `from`, `to` and `relationType` non-empty strings, `metadata` an object
//!   when present.
//! - Both may carry `"keyspace":"name"` and any other fields, which are kept as they are.
//! - `kv`: exactly one of `key` (the key as text) and `key_base64` (standard base64 with
//!   padding, for keys that are not UTF-8), likewise `value` / `value_base64`; nothing else.
//!
//! Export writes `type` first, then `keyspace`, the fields above in the order shown, and
//! any others in key order (nested objects in key order too).
//!
//! # Keys
//!
//! ```text
//!   line                               key                               value
//!   entity   N            in K   ──►   K:entity:N                        ┐ the line's object,
//!   relation F -[T]-> G   in K   ──►   K:relation:["F","T","G"]          ┘ compact, no "keyspace"
//!   kv       key                 ──►   key                                 value
//!   (no keyspace: the same keys without "K:"; the array is compact JSON, so any names work)
//! ```
//!
//! The keyspace K of an entity or relation is its own `keyspace` field; else
//! [`ImportOptions::keyspace`]; else, with [`ImportOptions::context_as_keyspace`], its
//! `metadata.context` when that is a string; else none. K must be a valid keyspace name (see
//! [`Store::keyspace`]). In a keyspace named `entity` (`relation`) one key can have two
//! readings (`entity:entity:x`: entity `x` in `entity`, or `entity:x` in none); the stored
//! object's `name` decides, and import keeps the later of two lines that share a key.
//!
//! Export calls a key an entity (relation) only when it has that shape, K is a valid keyspace
//! name, and its value is exactly what importing the line would store: a valid object whose
//! `name` (`from`, `relationType`, `to`) matches the key, with no `keyspace` field, in the
//! canonical compact form. Anything else is a `kv` line with the full key and value, so
//! export → import into an empty store reproduces every key and value byte for byte, and
//! exporting that store again gives the same bytes.
//!
//! # Consistency and atomicity
//!
//! - Export reads the whole store at one snapshot, in key order; writes made meanwhile are
//!   wholly in it or wholly not.
//! - Import first reads and checks every line, holding the records in memory. One bad line
//!   is [`Error::Import`] with its 1-based number, and nothing is written. Then it writes, in
//!   key order, in batches of [`ImportOptions::batch_size`], each atomic at the criticality
//!   the rules give its keys (as a plain put); the import as a whole is not atomic: a failed
//!   write leaves the earlier batches in place. A key given twice: the later line wins.
//! - [`Store::check_graph`] reads one snapshot. There an entity is any key of entity shape
//!   holding a valid entity object of that name (canonical or not), and a relation dangles
//!   when its `from` or `to` entity is missing from the relation's own keyspace.

use std::collections::{BTreeMap, HashSet};
use std::fmt::{self, Write as _};
use std::io::{BufRead, Write};

use serde_json::{Map, Value as Json};
use strata_tiering::{Key, KeyRange};

use crate::base64::{base64_decode, base64_encode};
use crate::error::{Error, Result};
use crate::store::{Batch, Store};

/// How [`Store::import`] places and writes what it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The keyspace for entities and relations whose line names none.
    pub keyspace: Option<String>,
    /// Puts an entity or relation without a keyspace of its own (and when `keyspace` is
    /// unset) in the keyspace its `metadata.context` string names.
    pub context_as_keyspace: bool,
    /// Records per atomic batch (0 is taken as 1).
    pub batch_size: usize,
}

impl Default for ImportOptions {
    fn default() -> ImportOptions {
        ImportOptions {
            keyspace: None,
            context_as_keyspace: false,
            batch_size: 1000,
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Entity lines.
    pub entities: u64,
    /// Relation lines.
    pub relations: u64,
    /// Plain key/value lines.
    pub values: u64,
    /// Bytes written, newlines included.
    pub bytes: u64,
}

/// What an import wrote, and the graph check after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Entities written.
    pub entities: u64,
    /// Relations written.
    pub relations: u64,
    /// Plain key/values written.
    pub values: u64,
    /// Of those, records accepted while the store was degraded: held in memory (the replay
    /// queue) and not in the log yet. [`Store::sync`] says when they are.
    pub degraded: u64,
    /// [`Store::check_graph`] once the import is written.
    pub graph: GraphReport,
}

/// The entities and relations of a store, and the relations whose ends are missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphReport {
    /// Entities found.
    pub entities: u64,
    /// Relations found.
    pub relations: u64,
    /// Relations whose `from` or `to` entity is missing, in key order.
    pub dangling: Vec<DanglingRelation>,
}

impl GraphReport {
    /// Whether every relation's two ends exist.
    pub fn is_consistent(&self) -> bool {
        self.dangling.is_empty()
    }
}

/// A relation one or both of whose entities are missing from its keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DanglingRelation {
    /// The relation's keyspace, where its entities should be.
    pub keyspace: Option<String>,
    /// The entity the relation starts from.
    pub from: String,
    /// The relation's type.
    pub relation_type: String,
    /// The entity the relation points to.
    pub to: String,
    /// Whether `from` is missing.
    pub missing_from: bool,
    /// Whether `to` is missing.
    pub missing_to: bool,
}

impl fmt::Display for DanglingRelation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (from, kind, to) = (&self.from, &self.relation_type, &self.to);
        write!(f, "relation {from:?} -[{kind:?}]-> {to:?}")?;
        match &self.keyspace {
            Some(keyspace) => write!(f, " in keyspace {keyspace:?}")?,
            None => write!(f, " outside any keyspace")?,
        }
        match (self.missing_from, self.missing_to) {
            (true, true) => write!(f, ": entities {from:?} and {to:?} are missing"),
            (true, false) => write!(f, ": entity {from:?} is missing"),
            (false, true) => write!(f, ": entity {to:?} is missing"),
            (false, false) => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Entity,
    Relation,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Entity => "entity",
            Kind::Relation => "relation",
        }
    }

    /// The required fields, in the order export writes them after `type`.
    fn fields(self) -> [&'static str; 3] {
        match self {
            Kind::Entity => ["name", "entityType", "observations"],
            Kind::Relation => ["from", "to", "relationType"],
        }
    }
}

/// An entity or relation: its keyspace and its object (without `keyspace`), checked.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    kind: Kind,
    keyspace: Option<String>,
    object: Map<String, Json>,
}

impl Node {
    fn text(&self, field: &str) -> &str {
        self.object.get(field).and_then(Json::as_str).unwrap_or("")
    }

    /// The key part after `entity:` / `relation:`.
    fn id(&self) -> String {
        match self.kind {
            Kind::Entity => self.text("name").to_owned(),
            Kind::Relation => {
                let [from, to, kind] = ["from", "to", "relationType"].map(|f| quote(self.text(f)));
                format!("[{from},{kind},{to}]")
            }
        }
    }

    fn key(&self) -> Vec<u8> {
        let prefix = self
            .keyspace
            .as_ref()
            .map_or(String::new(), |k| format!("{k}:"));
        format!("{prefix}{}:{}", self.kind.tag(), self.id()).into_bytes()
    }

    /// The canonical compact object, with `keyspace` after `type` when given.
    fn json(&self, keyspace: Option<&str>) -> String {
        let mut out = String::from("{");
        let mut field = |name: &str, value: &Json| {
            if out.len() > 1 {
                out.push(',');
            }
            let _ = write!(out, "{}:{value}", quote(name));
        };
        let known = self.kind.fields();
        let order = ["type"].into_iter().chain(known).chain(["metadata"]);
        for (i, name) in order.enumerate() {
            if let Some(value) = self.object.get(name) {
                field(name, value);
            }
            if let (0, Some(keyspace)) = (i, keyspace) {
                field("keyspace", &Json::from(keyspace));
            }
        }
        for (name, value) in &self.object {
            if !matches!(name.as_str(), "type" | "metadata") && !known.contains(&name.as_str()) {
                field(name, value);
            }
        }
        out.push('}');
        out
    }
}

fn quote(text: &str) -> String {
    Json::from(text).to_string()
}

/// Checks an entity's or relation's fields; the detail says what is wrong.
fn check_object(kind: Kind, object: &Map<String, Json>) -> std::result::Result<(), String> {
    if object.get("type").and_then(Json::as_str) != Some(kind.tag()) {
        return Err(format!("`type` must be {:?}", kind.tag()));
    }
    for name in kind.fields() {
        let value = object
            .get(name)
            .ok_or_else(|| format!("missing `{name}`"))?;
        match (name, value) {
            ("observations", Json::Array(items)) if items.iter().all(Json::is_string) => {}
            ("observations", _) => return Err("`observations` must be an array of strings".into()),
            (_, Json::String(text)) if !text.is_empty() => {}
            _ => return Err(format!("`{name}` must be a non-empty string")),
        }
    }
    match object.get("metadata") {
        None | Some(Json::Object(_)) => Ok(()),
        Some(_) => Err("`metadata` must be an object".into()),
    }
}

/// One checked line: a key and value to write, and what kind of record it is.
type Record = (Vec<u8>, Vec<u8>, Option<Kind>);

/// Parses and checks one (non-blank) line. `keyspace_ok` is the store's keyspace name check.
fn parse_line(
    text: &str,
    options: &ImportOptions,
    keyspace_ok: &dyn Fn(&str) -> std::result::Result<(), String>,
) -> std::result::Result<Record, String> {
    let json: Json = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Json::Object(mut object) = json else {
        return Err("not a JSON object".into());
    };
    let kind = match object.get("type") {
        None => return Err("missing `type`".into()),
        Some(Json::String(tag)) if tag == "entity" => Kind::Entity,
        Some(Json::String(tag)) if tag == "relation" => Kind::Relation,
        Some(Json::String(tag)) if tag == "kv" => return parse_kv(&object),
        Some(other) => {
            return Err(format!("unknown `type` {other} (entity, relation or kv)"));
        }
    };
    let own = match object.remove("keyspace") {
        None => None,
        Some(Json::String(name)) => Some(name),
        Some(_) => return Err("`keyspace` must be a string".into()),
    };
    check_object(kind, &object)?;
    let context = object
        .get("metadata")
        .and_then(|m| m.get("context"))
        .and_then(Json::as_str)
        .filter(|_| options.context_as_keyspace);
    let keyspace = own
        .or_else(|| options.keyspace.clone())
        .or_else(|| context.map(str::to_owned));
    if let Some(name) = &keyspace {
        keyspace_ok(name).map_err(|e| format!("keyspace {name:?}: {e}"))?;
    }
    let node = Node {
        kind,
        keyspace,
        object,
    };
    let key = node.key();
    Key::validate(&key)
        .map_err(|e| format!("key {}: {e}", quote(&String::from_utf8_lossy(&key))))?;
    Ok((key, node.json(None).into_bytes(), Some(kind)))
}

fn parse_kv(object: &Map<String, Json>) -> std::result::Result<Record, String> {
    if let Some(extra) = object.keys().find(|name| {
        !matches!(
            name.as_str(),
            "type" | "key" | "key_base64" | "value" | "value_base64"
        )
    }) {
        return Err(format!("unknown field `{extra}` in a kv line"));
    }
    let bytes = |name: &str| -> std::result::Result<Vec<u8>, String> {
        let encoded = format!("{name}_base64");
        match (object.get(name), object.get(&encoded)) {
            (Some(Json::String(text)), None) => Ok(text.clone().into_bytes()),
            (None, Some(Json::String(text))) => {
                base64_decode(text).map_err(|e| format!("`{encoded}`: {e}"))
            }
            (Some(_), Some(_)) => Err(format!("both `{name}` and `{encoded}`")),
            (None, None) => Err(format!("missing `{name}` (or `{encoded}`)")),
            _ => Err(format!("`{name}` / `{encoded}` must be a string")),
        }
    };
    let key = bytes("key")?;
    Key::validate(&key).map_err(|e| format!("key: {e}"))?;
    if strata_tiering::record::is_reserved(&key) {
        return Err("the key is reserved for the store's own use".into());
    }
    Ok((key, bytes("value")?, None))
}

/// What a stored pair is: an entity or relation, or (`None`) a plain value. With `strict`,
/// only when importing its export line would store exactly these bytes.
fn recognise(
    key: &[u8],
    value: &[u8],
    strict: bool,
    keyspace_ok: &dyn Fn(&str) -> bool,
) -> Option<Node> {
    let key = std::str::from_utf8(key).ok()?;
    let mut shapes = vec![(None, key)];
    if let Some((keyspace, rest)) = key.split_once(':') {
        if keyspace_ok(keyspace) {
            shapes.push((Some(keyspace), rest));
        }
    }
    let mut object: Option<Option<Map<String, Json>>> = None;
    for (keyspace, rest) in shapes {
        let (kind, id) = if let Some(id) = rest.strip_prefix("entity:") {
            (Kind::Entity, id)
        } else if let Some(id) = rest.strip_prefix("relation:") {
            (Kind::Relation, id)
        } else {
            continue;
        };
        let parsed = object.get_or_insert_with(|| match serde_json::from_slice(value) {
            Ok(Json::Object(map)) => Some(map),
            _ => None,
        });
        let map = parsed.as_ref()?;
        if map.contains_key("keyspace") || check_object(kind, map).is_err() {
            continue;
        }
        let node = Node {
            kind,
            keyspace: keyspace.map(str::to_owned),
            object: map.clone(),
        };
        let matches = match kind {
            Kind::Entity => node.text("name") == id,
            Kind::Relation if strict => node.id() == id,
            Kind::Relation => serde_json::from_str::<[String; 3]>(id).is_ok_and(|[f, t, g]| {
                [f, t, g] == ["from", "relationType", "to"].map(|n| node.text(n))
            }),
        };
        if matches && (!strict || node.json(None).as_bytes() == value) {
            return Some(node);
        }
    }
    None
}

/// Where a record of `kind` is counted: entities, relations, plain values.
fn slot(kind: Option<Kind>) -> usize {
    match kind {
        Some(Kind::Entity) => 0,
        Some(Kind::Relation) => 1,
        None => 2,
    }
}

fn keyspace_detail(error: Error) -> String {
    match error {
        Error::Config { detail, .. } => detail,
        other => other.to_string(),
    }
}

fn write_error(source: std::io::Error) -> Error {
    Error::Io {
        op: "write export",
        path: "<output>".into(),
        source,
    }
}

impl Store {
    /// Writes every live key of the store, read at one snapshot and in key order, as JSON
    /// lines, one per key:
    ///
    /// ```text
    /// {"type":"entity","keyspace":"K","name":"N","entityType":"…","observations":[…],…}  ◄─ K:entity:N
    /// {"type":"relation","from":"F","to":"G","relationType":"T",…}  ◄─ relation:["F","T","G"]
    /// {"type":"kv","key":"task:1","value":"…"}                     ◄─ any other key
    /// {"type":"kv","key_base64":"/w==","value_base64":"AAE="}      ◄─ bytes that are not UTF-8
    /// ```
    ///
    /// Entities and relations carry `metadata` and any other fields of their stored object.
    /// A key is written as an entity or relation only when importing that line would store
    /// exactly its value again, so [`import`](Self::import) into an empty store reproduces
    /// every key and value byte for byte. A failed write is [`Error::Io`] (`write export`).
    pub fn export(&self, out: &mut dyn Write) -> Result<ExportReport> {
        self.export_with_progress(out, &mut |_| {})
    }

    /// [`export`](Self::export), calling `progress` with the number of lines written so far
    /// after every line.
    pub fn export_with_progress(
        &self,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ExportReport> {
        let snapshot = self.snapshot();
        let keyspace_ok = |name: &str| self.keyspace(name).is_ok();
        let (mut counts, mut bytes) = ([0u64; 3], 0u64);
        let mut line = String::new();
        for item in snapshot.scan(&KeyRange::all())? {
            let (key, value) = item?;
            line.clear();
            let node = recognise(key.as_bytes(), value.as_bytes(), true, &keyspace_ok);
            counts[slot(node.as_ref().map(|n| n.kind))] += 1;
            match node {
                Some(node) => line.push_str(&node.json(node.keyspace.as_deref())),
                None => {
                    line.push_str(r#"{"type":"kv""#);
                    for (name, bytes) in [("key", key.as_bytes()), ("value", value.as_bytes())] {
                        let _ = match std::str::from_utf8(bytes) {
                            Ok(text) => write!(line, ",{}:{}", quote(name), quote(text)),
                            Err(_) => {
                                write!(line, r#","{name}_base64":"{}""#, base64_encode(bytes))
                            }
                        };
                    }
                    line.push('}');
                }
            }
            line.push('\n');
            out.write_all(line.as_bytes()).map_err(write_error)?;
            bytes += line.len() as u64;
            progress(counts.iter().sum());
        }
        out.flush().map_err(write_error)?;
        let [entities, relations, values] = counts;
        Ok(ExportReport {
            entities,
            relations,
            values,
            bytes,
        })
    }

    /// Reads JSON lines as [`export`](Self::export) writes them, checks them all, then writes
    /// them in key order in atomic batches of [`ImportOptions::batch_size`].
    ///
    /// Entity `N` goes to `K:entity:N` and relation `F -[T]-> G` to `K:relation:["F","T","G"]`,
    /// their value the line's object without `keyspace`; K is the line's `keyspace`, else
    /// [`ImportOptions::keyspace`], else (with [`ImportOptions::context_as_keyspace`]) the
    /// string `metadata.context`, else none (keys without `K:`). A `kv` line writes its key
    /// as it is. Blank lines are skipped; a key given twice takes the later line.
    ///
    /// A bad line is [`Error::Import`] with its 1-based number, and nothing is written; a
    /// failed read is [`Error::Io`] (`read import`). Each batch is atomic, the import as a
    /// whole is not. The report carries [`check_graph`](Self::check_graph) after the writes.
    pub fn import(&self, input: &mut dyn BufRead, options: &ImportOptions) -> Result<ImportReport> {
        self.import_with_progress(input, options, &mut |_| {})
    }

    /// [`import`](Self::import), calling `progress` with the number of records written so
    /// far after every batch.
    pub fn import_with_progress(
        &self,
        input: &mut dyn BufRead,
        options: &ImportOptions,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ImportReport> {
        if let Some(name) = &options.keyspace {
            self.keyspace(name)?;
        }
        let keyspace_ok = |name: &str| self.keyspace(name).map(drop).map_err(keyspace_detail);
        let mut records: BTreeMap<Vec<u8>, (Vec<u8>, Option<Kind>)> = BTreeMap::new();
        let mut buffer = Vec::new();
        let mut line = 0u64;
        loop {
            buffer.clear();
            let read = input
                .read_until(b'\n', &mut buffer)
                .map_err(|source| Error::Io {
                    op: "read import",
                    path: "<input>".into(),
                    source,
                })?;
            if read == 0 {
                break;
            }
            line += 1;
            let bad = |detail: String| Error::Import { line, detail };
            let text = std::str::from_utf8(&buffer).map_err(|e| bad(format!("not UTF-8: {e}")))?;
            let text = if line == 1 {
                text.trim_start_matches('\u{feff}')
            } else {
                text
            };
            if text.trim().is_empty() {
                continue;
            }
            let (key, value, kind) = parse_line(text, options, &keyspace_ok).map_err(bad)?;
            records.insert(key, (value, kind));
        }
        let records: Vec<_> = records.into_iter().collect();
        let mut counts = [0u64; 3];
        let mut degraded = 0;
        for chunk in records.chunks(options.batch_size.max(1)) {
            let mut batch = Batch::new();
            for (key, (value, _)) in chunk {
                batch.put(key, value.as_slice());
            }
            if self.write(&batch)?.degraded.is_some() {
                degraded += chunk.len() as u64;
            }
            chunk
                .iter()
                .for_each(|(_, (_, kind))| counts[slot(*kind)] += 1);
            progress(counts.iter().sum());
        }
        let [entities, relations, values] = counts;
        let graph = self.check_graph()?;
        Ok(ImportReport {
            entities,
            relations,
            values,
            degraded,
            graph,
        })
    }

    /// Reads the store at one snapshot and reports every relation whose `from` or `to`
    /// entity is missing from the relation's keyspace.
    pub fn check_graph(&self) -> Result<GraphReport> {
        let snapshot = self.snapshot();
        let keyspace_ok = |name: &str| self.keyspace(name).is_ok();
        let mut entities: HashSet<(Option<String>, String)> = HashSet::new();
        let mut relations = Vec::new();
        for item in snapshot.scan(&KeyRange::all())? {
            let (key, value) = item?;
            let Some(node) = recognise(key.as_bytes(), value.as_bytes(), false, &keyspace_ok)
            else {
                continue;
            };
            match node.kind {
                Kind::Entity => {
                    let name = node.text("name").to_owned();
                    entities.insert((node.keyspace, name));
                }
                Kind::Relation => relations.push(node),
            }
        }
        let mut report = GraphReport {
            entities: entities.len() as u64,
            relations: relations.len() as u64,
            dangling: Vec::new(),
        };
        for node in relations {
            let [from, relation_type, to] =
                ["from", "relationType", "to"].map(|f| node.text(f).to_owned());
            let missing =
                |name: &String| !entities.contains(&(node.keyspace.clone(), name.clone()));
            let (missing_from, missing_to) = (missing(&from), missing(&to));
            if missing_from || missing_to {
                report.dangling.push(DanglingRelation {
                    keyspace: node.keyspace.clone(),
                    from,
                    relation_type,
                    to,
                    missing_from,
                    missing_to,
                });
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
