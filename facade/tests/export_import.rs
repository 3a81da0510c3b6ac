//! JSON-lines export and import: entities, relations and plain key/values round trip byte for
//! byte, bad lines write nothing, and relations pointing at missing entities are reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, Cursor, Read, Write};

use common::{clock, open, text};
use strata::{Config, Criticality, DanglingRelation, Error, ImportOptions, KeyRange, Stage, Store};

const ENTITY: &str = r#"{"type":"entity","name":"chart_123_desired_outcome","entityType":"desired_outcome","observations":["Build comprehensive Django web application"],"metadata":{"dueDate":"2025-12-01","chartId":"chart_123","context":"learning"}}"#;
const RELATION: &str = r#"{"type":"relation","from":"chart_123_desired_outcome","to":"chart_123_current_reality","relationType":"has_tension","metadata":{"createdAt":"2025-11-17T10:30:00Z"}}"#;
const REALITY: &str = r#"{"type":"entity","name":"chart_123_current_reality","entityType":"current_reality","observations":[],"metadata":{"context":"learning"}}"#;

fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &clock(), Config::default());
    (dir, store)
}

fn import(
    store: &Store,
    lines: &str,
    options: &ImportOptions,
) -> strata::Result<strata::ImportReport> {
    store.import(&mut Cursor::new(lines.as_bytes()), options)
}

fn everything(store: &Store) -> Vec<(Vec<u8>, Vec<u8>)> {
    store
        .scan(&KeyRange::all())
        .unwrap()
        .map(|item| {
            let (key, value) = item.unwrap();
            (key.as_bytes().to_vec(), value.as_bytes().to_vec())
        })
        .collect()
}

fn export(store: &Store) -> String {
    let mut out = Vec::new();
    store.export(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn export_then_import_reproduces_every_key_value_and_the_same_bytes() {
    let (_dir, source) = fresh();
    source.put("task:1", r#"{"title":"ship it"}"#).unwrap();
    source
        .put(b"bin:\xff\x00".as_slice(), "text value")
        .unwrap();
    source
        .put("blob", vec![0u8, 0x9f, 0x92, 0x96, 0xff])
        .unwrap();
    source.put("entity:fake", "not json").unwrap();
    // An entity object, but not in the canonical form import stores: exported as kv, intact.
    source
        .put(
            "entity:spaced",
            r#"{"type":"entity", "name":"spaced","entityType":"t","observations":[]}"#,
        )
        .unwrap();
    let lines = [ENTITY, RELATION, REALITY].join("\n");
    import(&source, &lines, &ImportOptions::default()).unwrap();
    let options = ImportOptions {
        keyspace: Some("work".into()),
        ..ImportOptions::default()
    };
    import(&source, &lines, &options).unwrap();
    source.flush().unwrap(); // some of it in warm, some in hot
    source.put("task:2", "after the flush").unwrap();

    let mut bytes = Vec::new();
    let mut seen = Vec::new();
    let report = source
        .export_with_progress(&mut bytes, &mut |n| seen.push(n))
        .unwrap();
    assert_eq!(
        (report.entities, report.relations, report.values),
        (4, 2, 6)
    );
    assert_eq!(report.bytes, bytes.len() as u64);
    assert_eq!(seen, (1..=12).collect::<Vec<u64>>());
    let exported = String::from_utf8(bytes.clone()).unwrap();
    assert_eq!(exported.lines().count(), 12);
    assert!(exported.contains(r#"{"type":"kv","key_base64":"YmluOv8A","value":"text value"}"#));
    assert!(exported.contains(r#"{"type":"kv","key":"blob","value_base64":"AJ+Slv8="}"#));
    assert!(exported
        .contains(r#"{"type":"entity","keyspace":"work","name":"chart_123_current_reality""#));
    assert!(exported.contains(r#"{"type":"kv","key":"entity:spaced","#));

    let (_other, target) = fresh();
    let imported = target
        .import(&mut Cursor::new(&bytes), &ImportOptions::default())
        .unwrap();
    assert_eq!(
        (imported.entities, imported.relations, imported.values),
        (4, 2, 6)
    );
    assert!(
        imported.graph.is_consistent(),
        "{:?}",
        imported.graph.dangling
    );
    assert_eq!(
        (imported.graph.entities, imported.graph.relations),
        (5, 2),
        "spaced counts"
    );
    assert_eq!(everything(&target), everything(&source));
    let mut again = Vec::new();
    assert_eq!(target.export(&mut again).unwrap(), report);
    assert_eq!(again, bytes);
}

#[test]
fn the_seed_lines_land_on_the_documented_keys() {
    let (_dir, store) = fresh();
    let report = import(
        &store,
        &format!("{ENTITY}\n\n{RELATION}\r\n"),
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(
        (report.entities, report.relations, report.values),
        (1, 1, 0)
    );
    let keys: Vec<String> = everything(&store)
        .into_iter()
        .map(|(k, _)| String::from_utf8(k).unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "entity:chart_123_desired_outcome",
            r#"relation:["chart_123_desired_outcome","has_tension","chart_123_current_reality"]"#,
        ]
    );
    let entity: serde_json::Value = store.get_json(&keys[0]).unwrap().unwrap();
    assert_eq!(
        entity,
        serde_json::from_str::<serde_json::Value>(ENTITY).unwrap()
    );
    assert_eq!(
        text(store.get(&keys[1]).unwrap()).unwrap(),
        r#"{"type":"relation","from":"chart_123_desired_outcome","to":"chart_123_current_reality","relationType":"has_tension","metadata":{"createdAt":"2025-11-17T10:30:00Z"}}"#
    );
}

#[test]
fn context_as_keyspace_places_them_under_their_context() {
    let (_dir, store) = fresh();
    let options = ImportOptions {
        context_as_keyspace: true,
        ..ImportOptions::default()
    };
    let own = r#"{"type":"entity","keyspace":"mine","name":"n","entityType":"t","observations":[],"metadata":{"context":"learning"}}"#;
    import(&store, &[ENTITY, RELATION, own].join("\n"), &options).unwrap();
    assert!(store
        .get("learning:entity:chart_123_desired_outcome")
        .unwrap()
        .is_some());
    assert!(store
        .get("entity:chart_123_desired_outcome")
        .unwrap()
        .is_none());
    // The relation has no context of its own: it stays outside any keyspace.
    assert_eq!(store.scan_prefix("relation:").unwrap().count(), 1);
    assert!(
        store.get("mine:entity:n").unwrap().is_some(),
        "its own keyspace wins"
    );
    let stored = text(
        store
            .get("learning:entity:chart_123_desired_outcome")
            .unwrap(),
    )
    .unwrap();
    assert!(!stored.contains("keyspace"), "{stored}");
}

#[test]
fn a_bad_line_is_reported_by_number_and_nothing_is_written() {
    let good = r#"{"type":"kv","key":"a","value":"1"}"#;
    for bad in [
        r#"{"type":"entity","name":""}"#,
        "not json",
        r#"{"type":"entity","name":"x","entityType":"t","observations":"no"}"#,
        r#"{"type":"kv","key":"k","key_base64":"aw==","value":"v"}"#,
        r#"{"type":"kv","key":"k","value_base64":"***"}"#,
        r#"{"type":"relation","from":"a","to":"b","relationType":"r","keyspace":"bad:name"}"#,
        r#"{"type":"edge"}"#,
        "[1, 2]",
    ] {
        let (_dir, store) = fresh();
        let lines = [good, ENTITY, bad, RELATION, good].join("\n");
        let error = import(
            &store,
            &lines,
            &ImportOptions {
                batch_size: 1,
                ..ImportOptions::default()
            },
        )
        .unwrap_err();
        match &error {
            Error::Import { line, detail } => {
                assert_eq!(*line, 3, "{bad}: {detail}");
                assert!(!detail.is_empty());
            }
            other => panic!("{bad}: {other}"),
        }
        assert!(error.to_string().starts_with("import line 3: "), "{error}");
        assert!(
            everything(&store).is_empty(),
            "{bad}: lines 1-2 were written"
        );
    }

    let (_dir, store) = fresh();
    let invalid_utf8 = b"{\"type\":\"kv\",\"key\":\"a\",\"value\":\"1\"}\n\xff\xfe\n";
    let error = store
        .import(
            &mut Cursor::new(&invalid_utf8[..]),
            &ImportOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(error, Error::Import { line: 2, .. }), "{error}");
    let options = ImportOptions {
        keyspace: Some("a:b".into()),
        ..ImportOptions::default()
    };
    assert!(matches!(
        import(&store, good, &options),
        Err(Error::Config { .. })
    ));
    assert!(everything(&store).is_empty());
}

#[test]
fn dangling_relations_are_reported_until_the_entity_exists() {
    let (_dir, store) = fresh();
    let report = import(
        &store,
        &[ENTITY, RELATION].join("\n"),
        &ImportOptions::default(),
    )
    .unwrap();
    let expected = DanglingRelation {
        keyspace: None,
        from: "chart_123_desired_outcome".into(),
        relation_type: "has_tension".into(),
        to: "chart_123_current_reality".into(),
        missing_from: false,
        missing_to: true,
    };
    assert!(!report.graph.is_consistent());
    assert_eq!(report.graph.dangling, vec![expected.clone()]);
    assert_eq!(store.check_graph().unwrap(), report.graph);
    let shown = expected.to_string();
    assert!(
        shown.contains("chart_123_current_reality") && shown.contains("missing"),
        "{shown}"
    );

    // The same relation in a keyspace where neither end exists.
    let options = ImportOptions {
        keyspace: Some("work".into()),
        ..ImportOptions::default()
    };
    let report = import(&store, RELATION, &options).unwrap();
    assert_eq!(report.graph.dangling.len(), 2);
    let in_work = &report.graph.dangling[1];
    assert_eq!(in_work.keyspace.as_deref(), Some("work"));
    assert!(in_work.missing_from && in_work.missing_to);

    // Adding the entities clears them: one by import, one by a plain put of an entity object.
    let report = import(&store, REALITY, &ImportOptions::default()).unwrap();
    assert_eq!(report.graph.dangling.len(), 1);
    let work = store.keyspace("work").unwrap();
    for name in ["chart_123_desired_outcome", "chart_123_current_reality"] {
        let entity = serde_json::json!({"type": "entity", "name": name, "entityType": "x", "observations": []});
        work.put(
            format!("entity:{name}"),
            serde_json::to_vec(&entity).unwrap(),
        )
        .unwrap();
    }
    let graph = store.check_graph().unwrap();
    assert!(graph.is_consistent(), "{:?}", graph.dangling);
    assert_eq!((graph.entities, graph.relations), (4, 2));

    // Deleting one brings it back, with missing_from.
    store.delete("entity:chart_123_desired_outcome").unwrap();
    let graph = store.check_graph().unwrap();
    assert_eq!(graph.dangling.len(), 1);
    assert!(graph.dangling[0].missing_from && !graph.dangling[0].missing_to);
}

#[test]
fn unknown_fields_survive_the_round_trip() {
    let (_dir, store) = fresh();
    let entity = r#"{"type":"entity","name":"n","entityType":"t","observations":["o"],"weight":0.5,"tags":["a",{"deep":[null,true]}],"metadata":{"x":{"y":1}}}"#;
    let relation = r#"{"type":"relation","from":"n","to":"n","relationType":"self","strength":3,"note":"ünïcode ✓"}"#;
    import(
        &store,
        &[entity, relation].join("\n"),
        &ImportOptions::default(),
    )
    .unwrap();
    let exported = export(&store);
    let lines: Vec<serde_json::Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0],
        serde_json::from_str::<serde_json::Value>(entity).unwrap()
    );
    assert_eq!(
        lines[1],
        serde_json::from_str::<serde_json::Value>(relation).unwrap()
    );

    let (_other, copy) = fresh();
    import(&copy, &exported, &ImportOptions::default()).unwrap();
    assert_eq!(export(&copy), exported);
    let stored: serde_json::Value = copy.get_json("entity:n").unwrap().unwrap();
    assert_eq!(stored["tags"][1]["deep"][1], true);
    assert_eq!(stored["weight"], 0.5);
}

#[test]
fn import_writes_in_batches_at_the_criticality_the_rules_give() {
    let (_dir, store) = fresh();
    store.create_keyspace("work", Criticality::High).unwrap();
    let lines: Vec<String> = (0..7)
        .map(|i| format!(r#"{{"type":"kv","key":"work:{i}","value":"v{i}"}}"#))
        .chain([r#"{"type":"kv","key":"plain","value":"p"}"#.to_owned()])
        .chain([r#"{"type":"kv","key":"work:0","value":"later wins"}"#.to_owned()])
        .collect();
    let options = ImportOptions {
        batch_size: 3,
        ..ImportOptions::default()
    };
    let mut progress = Vec::new();
    let report = store
        .import_with_progress(&mut Cursor::new(lines.join("\n")), &options, &mut |n| {
            progress.push(n)
        })
        .unwrap();
    assert_eq!(report.values, 8, "work:0 twice is one key");
    assert_eq!(progress, [3, 6, 8]);
    assert_eq!(
        text(store.get("work:0").unwrap()).as_deref(),
        Some("later wins")
    );
    store.sync(Stage::Cold).unwrap();
    assert_eq!(store.history("work:6").unwrap().len(), 1, "HIGH: in git");
    assert!(
        store.history("plain").unwrap().is_empty(),
        "default class: not in git"
    );
}

struct Broken;

impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("disk full"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Read for Broken {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("unplugged"))
    }
}

impl BufRead for Broken {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        Err(std::io::Error::other("unplugged"))
    }
    fn consume(&mut self, _: usize) {}
}

#[test]
fn io_failures_name_the_side_that_failed() {
    let (_dir, store) = fresh();
    store.put("k", "v").unwrap();
    let error = store.export(&mut Broken).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Io {
                op: "write export",
                ..
            }
        ),
        "{error}"
    );
    let error = store
        .import(&mut Broken, &ImportOptions::default())
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Io {
                op: "read import",
                ..
            }
        ),
        "{error}"
    );
    let report = import(&store, "", &ImportOptions::default()).unwrap();
    assert_eq!(report.values + report.entities + report.relations, 0);
    assert_eq!(everything(&store).len(), 1);
}
