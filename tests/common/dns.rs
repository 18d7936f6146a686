//! A DNS server the test controls, and a gateway that resolves through it: for membership
//! that follows a DNS name (the `loadbalancing` exporter's and the tier's `resolver.dns`).

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use super::gateway::Gateway;

/// A DNS server (dnslib, from PyPI) on `127.53.X.1:53` answering for one name from a records
/// file; ends when dropped.
pub struct DnsServer {
    child: std::process::Child,
    address: Ipv4Addr,
    records: PathBuf,
}

impl DnsServer {
    pub const NAME: &'static str = "backends.tailgate.test";

    pub fn start(records: &[Ipv4Addr]) -> DnsServer {
        let python = super::python::venv(super::python::Venv::Dns);
        // An address of its own per test process and server: several may run at once.
        static SERVERS: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);
        let address = Ipv4Addr::new(
            127,
            53,
            (std::process::id() % 250) as u8 + 1,
            SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        );
        let dir = super::grpc::temp_path("dns");
        std::fs::create_dir_all(&dir).expect("a directory for the records");
        let mut server = DnsServer {
            child: std::process::Command::new(python)
                .arg(super::python::script_dir().join("dns_server.py"))
                .arg(address.to_string())
                .arg(Self::NAME)
                .arg(dir.join("records"))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("start the DNS server"),
            address,
            records: dir.join("records"),
        };
        server.set(records);
        let mut line = String::new();
        let stdout = server.child.stdout.take().expect("piped");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("the DNS server's first line");
        assert_eq!(
            line.trim(),
            "ready",
            "the DNS server did not start (port 53 on {address} needs root)"
        );
        server
    }

    /// Makes `records` the answer from the next query on.
    pub fn set(&self, records: &[Ipv4Addr]) {
        let text: Vec<String> = records.iter().map(ToString::to_string).collect();
        let temporary = self.records.with_extension("new");
        std::fs::write(&temporary, text.join("\n")).expect("write the records");
        std::fs::rename(&temporary, &self.records).expect("replace the records");
    }

    /// A `resolv.conf` naming this server alone.
    pub fn resolv_conf(&self) -> PathBuf {
        let path = self.records.with_file_name("resolv.conf");
        std::fs::write(
            &path,
            format!(
                "nameserver {}\noptions timeout:1 attempts:1\n",
                self.address
            ),
        )
        .expect("write resolv.conf");
        path
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `config` with `resolv_conf` as the gateway's /etc/resolv.conf: the process gets a
/// private mount namespace of its own in which that file is bind-mounted over the system's, so
/// the gateway resolves through the test's DNS server with the Collector's configuration keys
/// and nothing else (the rest of the machine keeps its resolver).
pub fn start_with_resolver(
    config: &str,
    (grpc, http, admin): (SocketAddr, SocketAddr, SocketAddr),
    resolv_conf: &std::path::Path,
) -> Gateway {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let source = CString::new(resolv_conf.as_os_str().as_bytes()).expect("a path");
    let target = CString::new("/etc/resolv.conf").expect("a path");
    let root = CString::new("/").expect("a path");
    Gateway::start_customised(config, grpc, http, admin, move |command| {
        // SAFETY: runs in the forked child before exec, and only makes system calls (unshare,
        // mount) on strings allocated before the fork; no lock or allocator is touched.
        unsafe {
            command.pre_exec(move || {
                let null = std::ptr::null();
                if libc::unshare(libc::CLONE_NEWNS) != 0
                    || libc::mount(
                        null,
                        root.as_ptr(),
                        null,
                        libc::MS_REC | libc::MS_PRIVATE,
                        null.cast(),
                    ) != 0
                    || libc::mount(
                        source.as_ptr(),
                        target.as_ptr(),
                        null,
                        libc::MS_BIND,
                        null.cast(),
                    ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    })
}
