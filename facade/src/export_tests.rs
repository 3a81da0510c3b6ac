//! Unit tests of export and import: the codec, key recognition and line parsing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn ok(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.contains(':') {
        Err("bad name".into())
    } else {
        Ok(())
    }
}

fn parse(text: &str) -> std::result::Result<Record, String> {
    parse_line(text, &ImportOptions::default(), &ok)
}

#[test]
fn base64_matches_rfc_4648_and_round_trips() {
    let vectors = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (plain, encoded) in vectors {
        assert_eq!(base64_encode(plain.as_bytes()), encoded);
        assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
    }
    let all: Vec<u8> = (0..=255).collect();
    for len in 0..all.len() {
        assert_eq!(
            base64_decode(&base64_encode(&all[..len])).unwrap(),
            &all[..len]
        );
    }
    assert_eq!(base64_encode(&[0xff, 0xfe]), "//4=");
}

#[test]
fn base64_rejects_what_is_not_canonical() {
    for bad in [
        "Zg", "Zg=", "Z===", "====", "Zg==Zm8=", "Zm9v!A==", "Zh==", "Zm9=", "Zm 9",
    ] {
        assert!(base64_decode(bad).is_err(), "{bad}");
    }
}

#[test]
fn entity_lines_become_canonical_keys_and_values() {
    let line = r#"{"observations":[],"name":"a:b","x":1,"entityType":"t","type":"entity","keyspace":"ks"}"#;
    let (key, value, kind) = parse(line).unwrap();
    assert_eq!(key, b"ks:entity:a:b");
    assert_eq!(kind, Some(Kind::Entity));
    let value = String::from_utf8(value).unwrap();
    assert_eq!(
        value,
        r#"{"type":"entity","name":"a:b","entityType":"t","observations":[],"x":1}"#
    );

    let line = r#"{"type":"relation","from":"a\"","to":"b","relationType":"r"}"#;
    let (key, _, _) = parse(line).unwrap();
    assert_eq!(
        String::from_utf8(key).unwrap(),
        r#"relation:["a\"","r","b"]"#
    );
}

#[test]
fn bad_lines_say_what_is_wrong() {
    let cases = [
        ("nope", "not JSON"),
        ("[1]", "not a JSON object"),
        (r#"{"name":"x"}"#, "missing `type`"),
        (r#"{"type":"thing"}"#, "unknown `type`"),
        (r#"{"type":7}"#, "unknown `type`"),
        (
            r#"{"type":"entity","name":""}"#,
            "`name` must be a non-empty string",
        ),
        (
            r#"{"type":"entity","name":"n","entityType":"t"}"#,
            "missing `observations`",
        ),
        (
            r#"{"type":"entity","name":"n","entityType":"t","observations":[1]}"#,
            "array of strings",
        ),
        (
            r#"{"type":"relation","from":"a","to":"b","relationType":"r","metadata":[]}"#,
            "`metadata` must be an object",
        ),
        (
            r#"{"type":"relation","from":"a","to":"b","relationType":"r","keyspace":"a:b"}"#,
            "keyspace \"a:b\"",
        ),
        (
            r#"{"type":"relation","from":"a","to":"b","relationType":"r","keyspace":1}"#,
            "`keyspace` must be a string",
        ),
        (
            r#"{"type":"kv","key":"k","key_base64":"aw==","value":"v"}"#,
            "both `key` and `key_base64`",
        ),
        (
            r#"{"type":"kv","key":"k","value_base64":"!!!!"}"#,
            "`value_base64`: invalid symbol",
        ),
        (r#"{"type":"kv","key":"k"}"#, "missing `value`"),
        (r#"{"type":"kv","key":"","value":"v"}"#, "key:"),
        (
            r#"{"type":"kv","key":"k","value":"v","extra":1}"#,
            "unknown field `extra`",
        ),
    ];
    for (line, expected) in cases {
        let detail = parse(line).unwrap_err();
        assert!(detail.contains(expected), "{line}: {detail}");
    }
}

#[test]
fn no_input_panics() {
    let line = r#"{"type":"relation","from":"ä","to":"b","relationType":"r","metadata":{"k":[1.5e300,-0,"\u00e9"]},"x":null}"#;
    assert!(parse(line).is_ok());
    let bytes = line.as_bytes();
    for end in 0..bytes.len() {
        if let Ok(prefix) = std::str::from_utf8(&bytes[..end]) {
            assert!(parse(prefix).is_err());
        }
        let _ = recognise(&bytes[..end], bytes, true, &|_| true);
        let _ = recognise(b"relation:[]", &bytes[..end], false, &|_| true);
    }
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse(&deep).unwrap_err().contains("not JSON"));
    assert!(recognise(b"entity:x", deep.as_bytes(), false, &|_| true).is_none());
}

#[test]
fn context_and_option_keyspaces_apply_in_order() {
    let line = r#"{"type":"entity","name":"n","entityType":"t","observations":[],"metadata":{"context":"learning"}}"#;
    let mut options = ImportOptions {
        context_as_keyspace: true,
        ..ImportOptions::default()
    };
    assert_eq!(
        parse_line(line, &options, &ok).unwrap().0,
        b"learning:entity:n"
    );
    options.keyspace = Some("given".into());
    assert_eq!(
        parse_line(line, &options, &ok).unwrap().0,
        b"given:entity:n"
    );
    assert_eq!(parse(line).unwrap().0, b"entity:n");
}

#[test]
fn recognition_needs_the_exact_canonical_value_and_resolves_ambiguous_keys() {
    let all = |_: &str| true;
    let value = br#"{"type":"entity","name":"x","entityType":"t","observations":[]}"#;
    let node = recognise(b"entity:entity:x", value, true, &all).unwrap();
    assert_eq!(node.keyspace.as_deref(), Some("entity"));
    assert!(recognise(b"entity:x", value, true, &all)
        .unwrap()
        .keyspace
        .is_none());
    assert!(
        recognise(b"entity:y", value, true, &all).is_none(),
        "name differs"
    );
    let spaced = br#"{"type":"entity", "name":"x","entityType":"t","observations":[]}"#;
    assert!(recognise(b"entity:x", spaced, true, &all).is_none());
    assert!(recognise(b"entity:x", spaced, false, &all).is_some());
    let relation = br#"{"type":"relation","from":"a","to":"b","relationType":"r"}"#;
    assert!(recognise(br#"k:relation:["a","r","b"]"#, relation, true, &all).is_some());
    assert!(recognise(br#"k:relation:[ "a","r","b"]"#, relation, true, &all).is_none());
    assert!(recognise(br#"k:relation:[ "a","r","b"]"#, relation, false, &all).is_some());
    assert!(recognise(br#"k:relation:["a","b","r"]"#, relation, false, &all).is_none());
}
