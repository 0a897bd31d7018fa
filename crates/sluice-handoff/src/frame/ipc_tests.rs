//! Frame tests of the CUDA IPC hand-off: the `cuda-ipc` reference and output mode, the request's
//! `release` list, the `POST /release` body, and what validation refuses about them.

use super::*;
use crate::cuda_ipc::{IpcHandle, HANDLE_LEN};
use proptest::prelude::*;

fn handle(seed: u8) -> IpcHandle {
    IpcHandle::from_bytes(std::array::from_fn(|i| {
        seed.wrapping_mul(31).wrapping_add(i as u8)
    }))
}

fn ipc(seed: u8, len: u64) -> DataRef {
    DataRef::CudaIpc {
        handle: handle(seed),
        len,
        device: 1,
    }
}

fn inline_item(id: &str) -> RequestItem {
    RequestItem {
        id: id.into(),
        out: None,
        inputs: vec![InputRef {
            from: "input".into(),
            data: DataRef::Inline { offset: 0, len: 0 },
        }],
    }
}

#[test]
fn request_with_ipc_input_and_releases_matches_the_protocol_json() {
    let manifest = RequestManifest {
        batch: BatchRequest {
            stage: "rec".into(),
            output: OutputMode::CudaIpc,
            items: vec![RequestItem {
                id: "a".into(),
                out: None,
                inputs: vec![InputRef {
                    from: "det".into(),
                    data: ipc(7, 4096),
                }],
            }],
        },
        release: vec![handle(1), handle(2)],
    };
    let frame = encode(&manifest, b"").unwrap();
    let expected = format!(
        concat!(
            r#"{{"stage":"rec","output":"cuda-ipc","items":[{{"id":"a","inputs":["#,
            r#"{{"from":"det","kind":"cuda-ipc","handle":"{}","len":4096,"device":1}}]}}],"#,
            r#""release":["{}","{}"]}}"#,
            "\n"
        ),
        handle(7),
        handle(1),
        handle(2)
    );
    assert_eq!(String::from_utf8(frame.clone()).unwrap(), expected);
    let (back, _): (RequestManifest, _) = decode(&frame).unwrap();
    assert_eq!(back, manifest);
    assert_eq!(back.batch.items[0].inputs[0].data.kind(), "cuda-ipc");
    assert_eq!(back.batch.items[0].inputs[0].data.len(), 4096);
}

#[test]
fn a_manifest_without_releases_is_a_plain_batch_request() {
    let batch = BatchRequest {
        stage: "det".into(),
        output: OutputMode::Inline,
        items: vec![inline_item("a")],
    };
    let manifest = RequestManifest {
        batch: batch.clone(),
        release: Vec::new(),
    };
    let frame = encode(&manifest, b"").unwrap();
    assert_eq!(frame, encode(&batch, b"").unwrap());
    let (back, _): (RequestManifest, _) = decode(&frame).unwrap();
    assert_eq!(back, manifest);
}

#[test]
fn response_with_an_ipc_output_round_trips() {
    let resp = BatchResponse {
        items: vec![
            ResponseItem {
                id: "a".into(),
                result: Ok(ipc(3, 12)),
            },
            ResponseItem {
                id: "b".into(),
                result: Ok(DataRef::Inline { offset: 0, len: 2 }),
            },
        ],
    };
    let frame = encode(&resp, b"hi").unwrap();
    let line = String::from_utf8(frame[..frame.len() - 3].to_vec()).unwrap();
    assert!(
        line.contains(&format!(
            r#"{{"id":"a","ok":true,"output":{{"kind":"cuda-ipc","handle":"{}","len":12,"device":1}}}}"#,
            handle(3)
        )),
        "{line}"
    );
    let (back, _): (BatchResponse, _) = decode(&frame).unwrap();
    assert_eq!(back, resp);
}

#[test]
fn malformed_handles_are_rejected() {
    let good = "ab".repeat(HANDLE_LEN);
    let cases = [
        ("ab".repeat(HANDLE_LEN - 1), "expected 128 hex digits"),
        ("ab".repeat(HANDLE_LEN + 1), "expected 128 hex digits"),
        (format!("zz{}", &good[2..]), "not hex"),
        (format!("+1{}", &good[2..]), "not hex"),
    ];
    for (bad, msg) in &cases {
        let input = format!(
            r#"{{"stage":"s","output":"inline","items":[{{"id":"a","inputs":[{{"from":"p","kind":"cuda-ipc","handle":"{bad}","len":1,"device":0}}]}}]}}"#
        );
        let err = decode::<RequestManifest>(format!("{input}\n").as_bytes()).unwrap_err();
        assert!(matches!(err, FrameError::Json(_)), "{err}");
        assert!(err.to_string().contains(msg), "{bad}: {err}");
        let release =
            format!(r#"{{"stage":"s","output":"inline","items":[],"release":["{bad}"]}}"#);
        let err = decode::<RequestManifest>(format!("{release}\n").as_bytes()).unwrap_err();
        assert!(err.to_string().contains(msg), "{bad}: {err}");
        let body = format!(r#"{{"release":["{bad}"]}}"#);
        assert!(serde_json::from_str::<ReleaseRequest>(&body).is_err());
    }
    let missing_device = format!(
        r#"{{"items":[{{"id":"a","ok":true,"output":{{"kind":"cuda-ipc","handle":"{good}","len":1}}}}]}}"#
    );
    assert!(decode::<BatchResponse>(format!("{missing_device}\n").as_bytes()).is_err());
}

#[test]
fn a_handle_is_released_at_most_once_and_output_by_one_item() {
    let manifest = RequestManifest {
        batch: BatchRequest {
            stage: "s".into(),
            output: OutputMode::Inline,
            items: vec![inline_item("a")],
        },
        release: vec![handle(5), handle(6), handle(5)],
    };
    let err = encode(&manifest, b"").unwrap_err();
    assert!(err.to_string().contains("released twice"), "{err}");
    let resp = BatchResponse {
        items: vec![
            ResponseItem {
                id: "a".into(),
                result: Ok(ipc(9, 1)),
            },
            ResponseItem {
                id: "b".into(),
                result: Ok(ipc(9, 2)),
            },
        ],
    };
    let err = encode(&resp, b"").unwrap_err();
    assert!(err.to_string().contains("output of two items"), "{err}");
}

#[test]
fn out_is_optional_in_cuda_ipc_mode_and_still_checked() {
    let input = r#""inputs":[{"from":"input","kind":"inline","offset":0,"len":0}]"#;
    let frame =
        |items: String| format!(r#"{{"stage":"s","output":"cuda-ipc","items":[{items}]}}"#) + "\n";
    let (plain, _): (RequestManifest, _) =
        decode(frame(format!(r#"{{"id":"a",{input}}}"#)).as_bytes()).unwrap();
    assert_eq!(plain.batch.output, OutputMode::CudaIpc);
    assert!(decode::<RequestManifest>(
        frame(format!(r#"{{"id":"a","out":"seg-1",{input}}}"#)).as_bytes()
    )
    .is_ok());
    let err = decode::<RequestManifest>(
        frame(format!(r#"{{"id":"a","out":"../x",{input}}}"#)).as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(err, FrameError::BadName { .. }), "{err}");
    let err = decode::<RequestManifest>(
        frame(format!(
            r#"{{"id":"a","out":"o",{input}}},{{"id":"b","out":"o",{input}}}"#
        ))
        .as_bytes(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("named by two items"), "{err}");
}

#[test]
fn check_answers_allows_ipc_outputs_only_when_asked() {
    let request = |output| BatchRequest {
        stage: "s".into(),
        output,
        items: vec![inline_item("a")],
    };
    let answer = |result| BatchResponse {
        items: vec![ResponseItem {
            id: "a".into(),
            result,
        }],
    };
    assert!(answer(Ok(ipc(1, 8)))
        .check_answers(&request(OutputMode::CudaIpc))
        .is_ok());
    // A stage told cuda-ipc may answer inline (the worker accepts both).
    assert!(answer(Ok(DataRef::Inline { offset: 0, len: 0 }))
        .check_answers(&request(OutputMode::CudaIpc))
        .is_ok());
    for mode in [OutputMode::Inline, OutputMode::Shm] {
        let err = answer(Ok(ipc(1, 8)))
            .check_answers(&request(mode))
            .unwrap_err();
        assert!(err.to_string().contains("a CUDA IPC output"), "{err}");
    }
    // An shm answer still needs the file the request named (here: none).
    let shm = Ok(DataRef::Shm {
        path: "seg-1".into(),
        len: 1,
    });
    assert!(answer(shm)
        .check_answers(&request(OutputMode::CudaIpc))
        .is_err());
}

#[test]
fn ipc_references_do_not_resolve_to_host_bytes() {
    let err = ipc(4, 16).resolve(b"", None).unwrap_err();
    assert!(err.to_string().contains("device memory"), "{err}");
}

#[test]
fn release_body_matches_the_protocol_json() {
    let body = ReleaseRequest {
        release: vec![handle(0)],
    };
    let json = serde_json::to_string(&body).unwrap();
    assert_eq!(json, format!(r#"{{"release":["{}"]}}"#, handle(0)));
    assert_eq!(serde_json::from_str::<ReleaseRequest>(&json).unwrap(), body);
    assert!(serde_json::from_str::<ReleaseRequest>(r#"{"release":[],"x":1}"#).is_err());
    assert!(serde_json::from_str::<ReleaseRequest>("{}").is_err());
}

proptest! {
    #[test]
    fn manifests_with_handles_round_trip(
        handles in proptest::collection::hash_set(any::<[u8; 16]>(), 0..6),
        lens in proptest::collection::vec(0u64..1 << 40, 1..6),
        device in 0u32..16,
    ) {
        let widen = |b: &[u8; 16]| IpcHandle::from_bytes(std::array::from_fn(|i| b[i % 16] ^ (i / 16) as u8));
        let release: Vec<IpcHandle> = handles.iter().map(widen).collect();
        let items = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| RequestItem {
                id: format!("i{i}"),
                out: None,
                inputs: vec![InputRef {
                    from: "p".into(),
                    data: DataRef::CudaIpc { handle: handle(i as u8), len, device },
                }],
            })
            .collect();
        let manifest = RequestManifest {
            batch: BatchRequest { stage: "s".into(), output: OutputMode::CudaIpc, items },
            release,
        };
        let frame = encode(&manifest, b"").unwrap();
        let (back, _): (RequestManifest, _) = decode(&frame).unwrap();
        prop_assert_eq!(back, manifest);
    }
}
