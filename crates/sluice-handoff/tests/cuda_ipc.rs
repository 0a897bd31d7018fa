//! CUDA IPC across two processes: this test binary exports a device allocation, a second run of the
//! same binary (the `ipc_consumer` test, told what to do through the environment) opens the handle,
//! copies the bytes back and prints their checksum. Skipped, with a note, where no GPU is present.

use sluice_handoff::cuda_ipc::{available, CudaDevice, DeviceBuffer, IpcHandle, OpenedMemory};
use std::process::Command;

const HANDLE_ENV: &str = "SLUICE_TEST_IPC_HANDLE";
const LEN_ENV: &str = "SLUICE_TEST_IPC_LEN";

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().enumerate().fold(0u64, |acc, (i, &b)| {
        acc.wrapping_mul(31).wrapping_add(u64::from(b) ^ i as u64)
    })
}

#[test]
fn device_memory_is_handed_over_in_place_between_processes() {
    if !available() {
        eprintln!("note: no CUDA device here; skipping the two-process CUDA IPC test");
        assert!(CudaDevice::open(0).is_err());
        return;
    }
    let device = CudaDevice::open(0).unwrap();
    let payload: Vec<u8> = (0..(4usize << 20))
        .map(|i| (i * 7 + i / 4096) as u8)
        .collect();
    let buffer = DeviceBuffer::from_host(&device, &payload).unwrap();
    let handle = buffer.export().unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "ipc_consumer", "--nocapture", "--test-threads=1"])
        .env(HANDLE_ENV, handle.to_string())
        .env(LEN_ENV, payload.len().to_string())
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
        .find_map(|l| l.strip_prefix("ipc-checksum "))
        .unwrap_or_else(|| panic!("consumer printed no checksum: {stdout}"));
    assert_eq!(reported.trim(), checksum(&payload).to_string());
    drop(buffer);
}

/// The consumer side; a no-op unless started by the test above.
#[test]
fn ipc_consumer() {
    let (Ok(handle), Ok(len)) = (std::env::var(HANDLE_ENV), std::env::var(LEN_ENV)) else {
        return;
    };
    let handle: IpcHandle = handle.parse().unwrap();
    let len: usize = len.parse().unwrap();
    let device = CudaDevice::open(0).unwrap();
    let opened = OpenedMemory::open(&device, &handle, len).unwrap();
    let mut host = vec![0u8; len];
    opened.copy_to_host(&mut host).unwrap();
    assert!(opened.copy_to_host(&mut vec![0u8; len + 1]).is_err());
    println!("ipc-checksum {}", checksum(&host));
}
