//! The CUDA IPC hand-off as the stage protocol carries it, on a real GPU: this test binary exports
//! a device allocation and answers it in a batch response frame (`"kind":"cuda-ipc"`); a second
//! run of the same binary (the `frame_consumer` test, given the frame through the environment)
//! decodes the frame, opens the handle, copies the bytes to host (what the worker does for a
//! consumer that needs a copy) and prints their checksum; then the producer releases the buffer,
//! as on a `"release"` list. Skipped, with a note, where `cuda_ipc::available()` is false.

use sluice_handoff::cuda_ipc::{available, CudaDevice, DeviceBuffer, OpenedMemory};
use sluice_handoff::frame::{self, BatchResponse, DataRef, ResponseItem};
use std::process::Command;

const FRAME_ENV: &str = "SLUICE_TEST_IPC_FRAME";

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(17u64, |acc, &b| {
        acc.wrapping_mul(131).wrapping_add(u64::from(b))
    })
}

#[test]
fn a_framed_handle_opens_and_copies_in_another_process() {
    if !available() {
        eprintln!("note: no CUDA device here; skipping the framed CUDA IPC hand-off test");
        return;
    }
    let device = CudaDevice::open(0).unwrap();
    let payload: Vec<u8> = (0..(1usize << 20))
        .map(|i| (i * 13 + i / 512) as u8)
        .collect();
    let buffer = DeviceBuffer::from_host(&device, &payload).unwrap();
    let response = BatchResponse {
        items: vec![ResponseItem {
            id: "0".into(),
            result: Ok(DataRef::CudaIpc {
                handle: buffer.export().unwrap(),
                len: payload.len() as u64,
                device: 0,
            }),
        }],
    };
    let encoded = frame::encode(&response, b"").unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "frame_consumer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FRAME_ENV, String::from_utf8(encoded).unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "consumer failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reported = stdout
        .lines()
        .find_map(|l| l.strip_prefix("frame-checksum "))
        .unwrap_or_else(|| panic!("consumer printed no checksum: {stdout}"));
    assert_eq!(reported.trim(), checksum(&payload).to_string());
    // Every consumer is done: the release frees the allocation.
    drop(buffer);
}

/// The consumer side; a no-op unless started by the test above.
#[test]
fn frame_consumer() {
    let Ok(encoded) = std::env::var(FRAME_ENV) else {
        return;
    };
    let (response, _): (BatchResponse, _) = frame::decode(encoded.as_bytes()).unwrap();
    let Ok(DataRef::CudaIpc { handle, len, .. }) = &response.items[0].result else {
        panic!("not a cuda-ipc output: {response:?}");
    };
    let len = *len as usize;
    let device = CudaDevice::open(0).unwrap();
    let opened = OpenedMemory::open(&device, handle, len).unwrap();
    let mut host = vec![0u8; len];
    opened.copy_to_host(&mut host).unwrap();
    println!("frame-checksum {}", checksum(&host));
}
