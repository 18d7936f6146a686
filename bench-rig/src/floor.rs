//! `tailgate-bench floor`: the CPU cost per span of only receiving the load generator's bytes.
//!
//! A writer thread sends exactly the bytes `tailgate-bench load` sends over OTLP/gRPC — the first
//! 64 requests of the load's trace stream with its default seed and shape, cycled, each behind
//! its 5-byte gRPC message prefix
//! (compressed flag, big-endian length) — into a loopback TCP socket, as fast as the socket takes
//! them. A reader thread reads and discards them into a 64 KiB buffer with plain blocking
//! `read` calls, and measures its own CPU time with `getrusage(RUSAGE_THREAD)`. What the reader
//! spends per span is the kernel's cost of handing the bytes to user space plus a read loop that
//! does nothing with them: no gateway on this machine that reads these bytes from a socket can
//! spend less. HTTP/2 framing (9 bytes per DATA frame of up to 16 KiB, HEADERS, WINDOW_UPDATE
//! and their round trips) is left out; it adds well under 0.1% to the bytes.
//!
//! On loopback the TCP receive path (the segment's protocol processing up to queueing it on the
//! receiving socket) runs in the *sending* thread's system call, so it is in the writer's CPU
//! time, not the reader's; the report gives both.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crate::corpus::Corpus;
use crate::load::SEED_DEFAULT;
use crate::oracle::Oracle;
use crate::traces::{Next, TraceSettings, TraceStream};

/// How many distinct requests are generated and cycled through, as the load generator does.
const DISTINCT_REQUESTS: usize = 64;
/// The reader's buffer.
const READ_BUFFER: usize = 64 << 10;

/// What `tailgate-bench floor` is told.
#[derive(Debug, Clone, clap::Args)]
pub struct FloorArgs {
    /// Seconds to send for.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Spans per request.
    #[arg(long, default_value_t = 500)]
    pub spans_per_request: usize,
    /// Where to write the JSON report.
    #[arg(long)]
    pub report: PathBuf,
    /// The CPU the reader thread is pinned to; unpinned when absent.
    #[arg(long)]
    pub reader_cpu: Option<usize>,
    /// The CPU the writer thread is pinned to; unpinned when absent.
    #[arg(long)]
    pub writer_cpu: Option<usize>,
}

/// The calling thread's CPU time (user + system).
fn thread_cpu_time() -> Duration {
    crate::sys::cpu_time(libc::RUSAGE_THREAD)
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) -> io::Result<()> {
    crate::sys::pin_thread(cpu)
}

/// What the reader saw.
struct ReaderResult {
    bytes: u64,
    reads: u64,
    cpu: Duration,
    wall: Duration,
}

/// What the writer did.
struct WriterResult {
    requests: u64,
    spans: u64,
    bytes: u64,
    cpu: Duration,
    wall: Duration,
}

fn read_all(mut stream: TcpStream, cpu: Option<usize>) -> io::Result<ReaderResult> {
    if let Some(cpu) = cpu {
        pin(cpu)?;
    }
    let mut buffer = vec![0u8; READ_BUFFER];
    let mut bytes = 0u64;
    let mut reads = 0u64;
    let cpu_before = thread_cpu_time();
    let started = Instant::now();
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                bytes += n as u64;
                reads += 1;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(ReaderResult {
        bytes,
        reads,
        cpu: thread_cpu_time() - cpu_before,
        wall: started.elapsed(),
    })
}

fn write_for(
    mut stream: TcpStream,
    frames: &[(Vec<u8>, u64)],
    duration: Duration,
    cpu: Option<usize>,
) -> io::Result<WriterResult> {
    if let Some(cpu) = cpu {
        pin(cpu)?;
    }
    let mut result = WriterResult {
        requests: 0,
        spans: 0,
        bytes: 0,
        cpu: Duration::ZERO,
        wall: Duration::ZERO,
    };
    let cpu_before = thread_cpu_time();
    let started = Instant::now();
    let deadline = started + duration;
    'send: loop {
        for (frame, spans) in frames {
            if Instant::now() >= deadline {
                break 'send;
            }
            stream.write_all(frame)?;
            result.requests += 1;
            result.spans += spans;
            result.bytes += frame.len() as u64;
        }
    }
    stream.shutdown(Shutdown::Write)?;
    result.cpu = thread_cpu_time() - cpu_before;
    result.wall = started.elapsed();
    Ok(result)
}

/// Runs the floor measurement and writes the report.
pub fn run(args: FloorArgs) -> io::Result<()> {
    if args.spans_per_request == 0 || args.duration.is_nan() || args.duration <= 0.0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "spans per request and duration must be positive",
        ));
    }
    let mut stream = TraceStream::new(TraceSettings {
        seed: SEED_DEFAULT,
        error_rate: 0.02,
        slow_rate: 0.02,
        spread: Duration::ZERO,
        oracle: Oracle::parse("always").map_err(io::Error::other)?,
        corpus: Corpus::Benchmark,
    })?;
    let started = Instant::now();
    let mut frames: Vec<(Vec<u8>, u64)> = Vec::with_capacity(DISTINCT_REQUESTS);
    while frames.len() < DISTINCT_REQUESTS {
        let Next::Request(request) = stream.next(started, args.spans_per_request, true) else {
            return Err(io::Error::other("the trace stream ended"));
        };
        // Composed as one uncompressed gRPC message, prefix included.
        frames.push((request.framed.to_vec(), request.spans));
    }

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let writer_stream = TcpStream::connect(listener.local_addr()?)?;
    let (reader_stream, _) = listener.accept()?;
    drop(listener);
    // As a gRPC client and server would be: small writes not held back.
    writer_stream.set_nodelay(true)?;
    reader_stream.set_nodelay(true)?;

    let reader_cpu = args.reader_cpu;
    let reader = thread::Builder::new()
        .name("floor-reader".into())
        .spawn(move || read_all(reader_stream, reader_cpu))?;
    let duration = Duration::from_secs_f64(args.duration);
    let writer_cpu = args.writer_cpu;
    let writer = thread::Builder::new()
        .name("floor-writer".into())
        .spawn(move || write_for(writer_stream, &frames, duration, writer_cpu))?;
    let written = writer
        .join()
        .map_err(|_| io::Error::other("the writer thread panicked"))??;
    let read = reader
        .join()
        .map_err(|_| io::Error::other("the reader thread panicked"))??;
    if read.bytes != written.bytes {
        return Err(io::Error::other(format!(
            "wrote {} bytes, read {}",
            written.bytes, read.bytes
        )));
    }

    let spans = written.spans.max(1) as f64;
    let duration_s = read.wall.as_secs_f64();
    let report = serde_json::json!({
        "spans_per_request": args.spans_per_request,
        "requests": written.requests,
        "spans": written.spans,
        "bytes": read.bytes,
        "bytes_per_span": read.bytes as f64 / spans,
        "duration_s": duration_s,
        "writer_duration_s": written.wall.as_secs_f64(),
        "reads": read.reads,
        "bytes_per_read": read.bytes as f64 / read.reads.max(1) as f64,
        "reader_cpu_s": read.cpu.as_secs_f64(),
        "reader_cpu_ns_per_span": read.cpu.as_nanos() as f64 / spans,
        "writer_cpu_s": written.cpu.as_secs_f64(),
        "writer_cpu_ns_per_span": written.cpu.as_nanos() as f64 / spans,
        "bytes_per_s": read.bytes as f64 / duration_s,
        "spans_per_s": written.spans as f64 / duration_s,
        "reader_cpu": args.reader_cpu,
        "writer_cpu": args.writer_cpu,
    });
    std::fs::write(&args.report, serde_json::to_vec_pretty(&report)?)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_byte_written_and_reports() {
        let report = std::env::temp_dir().join(format!("floor-{}.json", std::process::id()));
        run(FloorArgs {
            duration: 0.2,
            spans_per_request: 20,
            report: report.clone(),
            reader_cpu: None,
            writer_cpu: None,
        })
        .expect("the floor runs");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).expect("report written")).unwrap();
        let _ = std::fs::remove_file(&report);
        let spans = json["spans"].as_u64().unwrap();
        assert!(spans >= json["requests"].as_u64().unwrap() * 20);
        assert!(json["bytes"].as_u64().unwrap() > spans * 100);
        assert!(json["reader_cpu_ns_per_span"].as_f64().unwrap() > 0.0);
    }
}
