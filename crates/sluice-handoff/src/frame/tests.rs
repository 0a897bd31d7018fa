//! Frame tests: exact JSON, round trips (proptest), and rejection of malformed frames.

use super::*;
use crate::name::NameError;
use proptest::prelude::*;

fn request_json(items: &str, output: &str) -> Vec<u8> {
    format!("{{\"stage\":\"det\",\"output\":\"{output}\",\"items\":[{items}]}}\n").into_bytes()
}

fn with_data(mut frame: Vec<u8>, data: &[u8]) -> Vec<u8> {
    frame.extend_from_slice(data);
    frame
}

#[test]
fn request_matches_the_protocol_json() {
    let req = BatchRequest {
        stage: "det".into(),
        output: OutputMode::Shm,
        items: vec![RequestItem {
            id: "a".into(),
            out: Some("seg-1".into()),
            inputs: vec![
                InputRef {
                    from: "input".into(),
                    data: DataRef::Inline { offset: 0, len: 3 },
                },
                InputRef {
                    from: "cls".into(),
                    data: DataRef::Shm {
                        path: "seg-0".into(),
                        len: 9,
                    },
                },
            ],
        }],
    };
    let frame = encode(&req, b"abc").unwrap();
    let expected = concat!(
        r#"{"stage":"det","output":"shm","items":[{"id":"a","out":"seg-1","inputs":["#,
        r#"{"from":"input","kind":"inline","offset":0,"len":3},"#,
        r#"{"from":"cls","kind":"shm","path":"seg-0","len":9}]}]}"#,
        "\nabc"
    );
    assert_eq!(String::from_utf8(frame.clone()).unwrap(), expected);
    assert_eq!(encode_parts(&req, &[b"a", b"", b"bc"]).unwrap(), frame);
    assert!(
        encode_parts(&req, &[b"ab"]).is_err(),
        "parts are validated as one region"
    );
    let (back, data): (BatchRequest, _) = decode(&frame).unwrap();
    assert_eq!(back, req);
    assert_eq!(data, b"abc");
}

#[test]
fn response_matches_the_protocol_json() {
    let resp = BatchResponse {
        items: vec![
            ResponseItem {
                id: "a".into(),
                result: Ok(DataRef::Inline { offset: 0, len: 2 }),
            },
            ResponseItem {
                id: "b".into(),
                result: Err("no text".into()),
            },
            ResponseItem {
                id: "c".into(),
                result: Ok(DataRef::Shm {
                    path: "seg-3".into(),
                    len: 0,
                }),
            },
        ],
    };
    let frame = encode(&resp, b"hi").unwrap();
    let expected = concat!(
        r#"{"items":[{"id":"a","ok":true,"output":{"kind":"inline","offset":0,"len":2}},"#,
        r#"{"id":"b","ok":false,"error":"no text"},"#,
        r#"{"id":"c","ok":true,"output":{"kind":"shm","path":"seg-3","len":0}}]}"#,
        "\nhi"
    );
    assert_eq!(String::from_utf8(frame.clone()).unwrap(), expected);
    let (back, _): (BatchResponse, _) = decode(&frame).unwrap();
    assert_eq!(back, resp);
}

#[test]
fn inconsistent_response_items_are_rejected() {
    for body in [
        r#"{"items":[{"id":"a","ok":true}]}"#,
        r#"{"items":[{"id":"a","ok":false}]}"#,
        r#"{"items":[{"id":"a","ok":true,"output":{"kind":"inline","offset":0,"len":0},"error":"x"}]}"#,
    ] {
        let err = decode::<BatchResponse>(format!("{body}\n").as_bytes()).unwrap_err();
        assert!(matches!(err, FrameError::Json(_)), "{body}: {err}");
        assert!(err.to_string().contains("response item \"a\""), "{err}");
    }
}

#[test]
fn truncated_frames_are_rejected() {
    let good = request_json(
        r#"{"id":"a","inputs":[{"from":"input","kind":"inline","offset":0,"len":4}]}"#,
        "inline",
    );
    let good = with_data(good, b"wxyz");
    assert!(decode::<BatchRequest>(&good).is_ok());
    let newline = good.iter().position(|&b| b == b'\n').unwrap();
    // Cut inside the manifest: no newline, or broken JSON.
    assert!(matches!(
        decode::<BatchRequest>(&good[..newline]),
        Err(FrameError::NoManifestLine)
    ));
    let mut cut = good[..newline - 3].to_vec();
    cut.push(b'\n');
    assert!(matches!(
        decode::<BatchRequest>(&cut),
        Err(FrameError::Json(_))
    ));
    // Cut inside the data region: the inline range no longer fits.
    let err = decode::<BatchRequest>(&good[..good.len() - 1]).unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::OutOfRange {
                offset: 0,
                len: 4,
                data_len: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("outside the 3-byte data region"),
        "{err}"
    );
    assert!(matches!(
        decode::<BatchRequest>(b""),
        Err(FrameError::NoManifestLine)
    ));
}

#[test]
fn bad_offsets_are_rejected() {
    for (offset, len) in [(5u64, 0u64), (0, 5), (2, 3), (u64::MAX, 2), (1, u64::MAX)] {
        let items = format!(
            r#"{{"id":"a","inputs":[{{"from":"input","kind":"inline","offset":{offset},"len":{len}}}]}}"#
        );
        let frame = with_data(request_json(&items, "inline"), b"abcd");
        let err = decode::<BatchRequest>(&frame).unwrap_err();
        assert!(
            matches!(err, FrameError::OutOfRange { .. }),
            "{offset}+{len}: {err}"
        );
        assert!(err.to_string().contains("item \"a\" input 0"), "{err}");
    }
    let err = decode::<BatchRequest>(&request_json(
        r#"{"id":"a","inputs":[{"from":"input","kind":"inline","offset":-1,"len":1}]}"#,
        "inline",
    ))
    .unwrap_err();
    assert!(matches!(err, FrameError::Json(_)), "{err}");
}

#[test]
fn path_traversal_is_rejected() {
    for (path, why) in [
        ("../etc/passwd", NameError::Slash),
        ("..", NameError::Dots),
        ("/dev/shm/x", NameError::Slash),
        ("", NameError::Empty),
    ] {
        let input = format!(
            r#"{{"id":"a","inputs":[{{"from":"det","kind":"shm","path":"{path}","len":1}}]}}"#
        );
        let err = decode::<BatchRequest>(&request_json(&input, "inline")).unwrap_err();
        assert!(
            matches!(&err, FrameError::BadName { field: "path", source, .. } if *source == why),
            "{path}: {err}"
        );
        let out = format!(
            r#"{{"id":"a","out":"{path}","inputs":[{{"from":"input","kind":"inline","offset":0,"len":0}}]}}"#
        );
        let err = decode::<BatchRequest>(&request_json(&out, "shm")).unwrap_err();
        assert!(
            matches!(&err, FrameError::BadName { field: "out", .. }),
            "{path}: {err}"
        );
        let resp = format!(
            "{{\"items\":[{{\"id\":\"a\",\"ok\":true,\"output\":{{\"kind\":\"shm\",\"path\":\"{path}\",\"len\":1}}}}]}}\n"
        );
        let err = decode::<BatchResponse>(resp.as_bytes()).unwrap_err();
        assert!(matches!(&err, FrameError::BadName { .. }), "{path}: {err}");
    }
}

#[test]
fn duplicate_ids_are_rejected() {
    let item = r#"{"id":"a","inputs":[{"from":"input","kind":"inline","offset":0,"len":0}]}"#;
    let err =
        decode::<BatchRequest>(&request_json(&format!("{item},{item}"), "inline")).unwrap_err();
    assert!(
        matches!(&err, FrameError::DuplicateId(id) if id == "a"),
        "{err}"
    );
    assert_eq!(err.to_string(), "duplicate item id \"a\" in the batch");
    let resp = b"{\"items\":[{\"id\":\"x\",\"ok\":false,\"error\":\"e\"},{\"id\":\"x\",\"ok\":false,\"error\":\"e\"}]}\n";
    assert!(matches!(
        decode::<BatchResponse>(resp),
        Err(FrameError::DuplicateId(_))
    ));
}

#[test]
fn out_names_must_match_the_output_mode() {
    let input = r#""inputs":[{"from":"input","kind":"inline","offset":0,"len":0}]"#;
    let cases = [
        (format!(r#"{{"id":"a",{input}}}"#), "shm", "no \"out\""),
        (
            format!(r#"{{"id":"a","out":"o",{input}}}"#),
            "inline",
            "names an \"out\"",
        ),
        (
            format!(r#"{{"id":"a","out":"o",{input}}},{{"id":"b","out":"o",{input}}}"#),
            "shm",
            "named by two items",
        ),
        (
            r#"{"id":"a","inputs":[]}"#.to_string(),
            "inline",
            "has no inputs",
        ),
        (format!(r#"{{"id":"",{input}}}"#), "inline", "empty id"),
    ];
    for (items, mode, msg) in cases {
        let err = decode::<BatchRequest>(&request_json(&items, mode)).unwrap_err();
        assert!(err.to_string().contains(msg), "{items}: {err}");
    }
    let err = decode::<BatchRequest>(b"{\"stage\":\"det\",\"output\":\"gpu\",\"items\":[]}\n")
        .unwrap_err();
    assert!(matches!(err, FrameError::Json(_)), "{err}");
}

#[test]
fn encode_refuses_what_decode_would_refuse() {
    let req = BatchRequest {
        stage: "det".into(),
        output: OutputMode::Inline,
        items: vec![RequestItem {
            id: "a".into(),
            out: None,
            inputs: vec![InputRef {
                from: "input".into(),
                data: DataRef::Inline { offset: 0, len: 9 },
            }],
        }],
    };
    assert!(matches!(
        encode(&req, b"short"),
        Err(FrameError::OutOfRange { .. })
    ));
}

#[test]
fn check_answers_ties_a_response_to_its_request() {
    let item = |id: &str, out: &str| RequestItem {
        id: id.into(),
        out: Some(out.into()),
        inputs: vec![InputRef {
            from: "input".into(),
            data: DataRef::Inline { offset: 0, len: 0 },
        }],
    };
    let req = BatchRequest {
        stage: "rec".into(),
        output: OutputMode::Shm,
        items: vec![item("a", "seg-1"), item("b", "seg-2")],
    };
    let shm = |path: &str| {
        Ok(DataRef::Shm {
            path: path.into(),
            len: 4,
        })
    };
    let answer = |items: Vec<(&str, Result<DataRef, String>)>| BatchResponse {
        items: items
            .into_iter()
            .map(|(id, result)| ResponseItem {
                id: id.into(),
                result,
            })
            .collect(),
    };
    let inline = Ok(DataRef::Inline { offset: 0, len: 1 });
    assert!(answer(vec![("a", shm("seg-1")), ("b", inline.clone())])
        .check_answers(&req)
        .is_ok());
    assert!(answer(vec![("a", Err("x".into())), ("b", shm("seg-2"))])
        .check_answers(&req)
        .is_ok());
    let wrong = [
        answer(vec![("a", shm("seg-1"))]),
        answer(vec![("b", shm("seg-2")), ("a", shm("seg-1"))]),
        answer(vec![("a", shm("seg-2")), ("b", shm("seg-1"))]),
    ];
    for resp in wrong {
        assert!(resp.check_answers(&req).is_err(), "{resp:?}");
    }
}

#[test]
fn resolve_reads_inline_and_shm_payloads() {
    let dir = tempfile::tempdir().unwrap();
    crate::shm::write_segment(dir.path(), "seg-0", b"mapped bytes").unwrap();
    let data = b"0123456789";
    let inline = DataRef::Inline { offset: 2, len: 3 };
    assert_eq!(&*inline.resolve(data, None).unwrap(), b"234");
    let shm = DataRef::Shm {
        path: "seg-0".into(),
        len: 12,
    };
    assert_eq!(
        &*shm.resolve(data, Some(dir.path())).unwrap(),
        b"mapped bytes"
    );
    assert!(shm.resolve(data, None).is_err());
    let wrong_len = DataRef::Shm {
        path: "seg-0".into(),
        len: 11,
    };
    let err = wrong_len.resolve(data, Some(dir.path())).unwrap_err();
    assert!(err.to_string().contains("holds 12 bytes where 11"), "{err}");
    let missing = DataRef::Shm {
        path: "seg-9".into(),
        len: 1,
    };
    assert!(missing.resolve(data, Some(dir.path())).is_err());
    let outside = DataRef::Inline {
        offset: u64::MAX,
        len: 1,
    };
    assert!(outside.resolve(data, None).is_err());
}

fn arb_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{1,12}".prop_filter("plain", |s| s != "." && s != "..")
}

/// A request with unique ids and out names, whose inline inputs are pushed into a data region.
fn arb_request() -> impl Strategy<Value = (BatchRequest, Vec<u8>)> {
    let input = prop_oneof![
        (arb_name(), proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(from, bytes)| (from, Ok(bytes))),
        (arb_name(), arb_name(), 0u64..1 << 40)
            .prop_map(|(from, path, len)| (from, Err((path, len)))),
    ];
    let item = proptest::collection::vec(input, 1..4);
    (
        arb_name(),
        any::<bool>(),
        proptest::collection::vec(item, 0..6),
    )
        .prop_map(|(stage, shm, items)| {
            let mut region = DataRegion::new();
            let items = items
                .into_iter()
                .enumerate()
                .map(|(i, inputs)| RequestItem {
                    id: format!("item-{i}"),
                    out: shm.then(|| format!("seg-{i}")),
                    inputs: inputs
                        .into_iter()
                        .map(|(from, data)| InputRef {
                            from,
                            data: match data {
                                Ok(bytes) => region.push(&bytes),
                                Err((path, len)) => DataRef::Shm { path, len },
                            },
                        })
                        .collect(),
                })
                .collect();
            let output = if shm {
                OutputMode::Shm
            } else {
                OutputMode::Inline
            };
            (
                BatchRequest {
                    stage,
                    output,
                    items,
                },
                region.into_bytes(),
            )
        })
}

proptest! {
    #[test]
    fn request_frames_round_trip((req, data) in arb_request()) {
        let frame = encode(&req, &data).unwrap();
        let manifest_line = &frame[..frame.len() - data.len() - 1];
        prop_assert!(!manifest_line.contains(&b'\n'));
        let (back, back_data): (BatchRequest, _) = decode(&frame).unwrap();
        prop_assert_eq!(&back, &req);
        prop_assert_eq!(back_data, &data[..]);
        for item in &back.items {
            for input in &item.inputs {
                if let DataRef::Inline { .. } = input.data {
                    prop_assert_eq!(input.data.resolve(back_data, None).unwrap().len() as u64, input.data.len());
                }
            }
        }
    }

    #[test]
    fn response_frames_round_trip(
        outputs in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..64).prop_map(Ok),
                "\\PC{0,20}".prop_map(Err),
            ],
            0..8,
        )
    ) {
        let mut region = DataRegion::new();
        let items: Vec<ResponseItem> = outputs
            .iter()
            .enumerate()
            .map(|(i, out)| ResponseItem {
                id: format!("i{i}"),
                result: out.as_ref().map(|bytes| region.push(bytes)).map_err(Clone::clone),
            })
            .collect();
        let resp = BatchResponse { items };
        let frame = encode(&resp, region.as_bytes()).unwrap();
        let (back, data): (BatchResponse, _) = decode(&frame).unwrap();
        prop_assert_eq!(&back, &resp);
        for (item, out) in back.items.iter().zip(&outputs) {
            match (&item.result, out) {
                (Ok(r), Ok(bytes)) => prop_assert_eq!(&*r.resolve(data, None).unwrap(), &bytes[..]),
                (Err(e), Err(msg)) => prop_assert_eq!(e, msg),
                _ => prop_assert!(false, "outcome changed"),
            }
        }
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode::<BatchRequest>(&bytes);
        let _ = decode::<BatchResponse>(&bytes);
    }
}
