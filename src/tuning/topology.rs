//! The machine as `tune` reads it: CPUs, cores, NUMA nodes, NICs and their interrupts, and the
//! CPUs this process may use.
//!
//! Everything is read from a tree laid out like `/` (a root holding `sys/` and `proc/`): the
//! live machine, or a recorded tree under `tuning/fixtures/`, so one code path serves both.
//! Reading is bounded: each file is read up to a stated size, each directory listing up to a
//! stated count, and every number checked before use; a file that breaks a bound or does not
//! parse is a [`TopologyError`] naming the file. Files a machine may lack for ordinary reasons
//! (no `node/` on a kernel without NUMA, no `topology/` in some containers, no cgroup cpuset)
//! fall back to what their absence means instead of failing.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use super::cpulist::{CpuListError, CpuSet};

/// The largest small sysfs/proc file read (a CPU list of 4096 singletons is under 20 KiB).
const SMALL_FILE_BYTES_MAX: u64 = 64 * 1024;
/// The largest `/proc/interrupts` read: 4096 CPU columns of 11 bytes over a few hundred lines
/// stays well under it.
const INTERRUPTS_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Entries of `sys/devices/system/node` read: the kernel's limit on nodes (`MAX_NUMNODES` with
/// `NODES_SHIFT` = 10) and the few files beside them (`online`, `possible`, `has_cpu`, ...).
const NODE_DIR_ENTRIES_MAX: usize = 1024 + 16;
/// Network interfaces read.
const NICS_MAX: usize = 256;
/// Interrupts read per NIC (MSI-X allows 2048 vectors per function).
const IRQS_PER_NIC_MAX: usize = 4096;
/// Bytes of a name (interface, interrupt, cgroup path) kept for the profile's comments.
const NAME_BYTES_MAX: usize = 64;

/// One online CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    /// Its id (`cpuN`).
    pub id: u16,
    /// Its socket (`topology/physical_package_id`).
    pub package: u32,
    /// The hardware threads sharing its core, itself included (`topology/thread_siblings_list`):
    /// the kernel's own grouping, used as the core's identity because `core_id` is unique only
    /// within a package.
    pub siblings: CpuSet,
}

/// One NUMA node that has CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its id (`nodeN`).
    pub id: u16,
    /// Its online CPUs.
    pub cpus: CpuSet,
    /// Its memory (`MemTotal` of the node's `meminfo`), in KiB.
    pub memory_kib: u64,
}

/// One interrupt of a NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Irq {
    /// Its number.
    pub number: u32,
    /// Its name in `/proc/interrupts` (the queue), when listed there.
    pub name: Option<String>,
}

/// A network interface backed by a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// The interface name.
    pub name: String,
    /// Its MSI/MSI-X interrupts in ascending order; empty for a device on legacy interrupts.
    pub irqs: Vec<Irq>,
}

/// The cgroup v2 cpuset that narrows the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpuset {
    /// The cgroup's path (from `/proc/self/cgroup`).
    pub cgroup: String,
    /// Its `cpuset.cpus.effective`.
    pub cpus: CpuSet,
}

/// The machine `tune` plans for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Online CPUs, ascending by id.
    pub cpus: Vec<Cpu>,
    /// NUMA nodes with CPUs, ascending by id; one node holding every CPU when the kernel
    /// reports none.
    pub nodes: Vec<Node>,
    /// NICs, ascending by name.
    pub nics: Vec<Nic>,
    /// The process's affinity mask (`Cpus_allowed_list`).
    pub allowed: CpuSet,
    /// The cgroup cpuset, where the cgroup has one.
    pub cpuset: Option<Cpuset>,
}

/// Why the machine could not be read.
#[derive(Debug)]
pub enum TopologyError {
    /// A file or directory that must exist could not be read.
    Read {
        /// The path.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// A file is larger than `tune` reads.
    TooLarge {
        /// The path.
        path: PathBuf,
        /// The bound, in bytes.
        bytes_max: u64,
    },
    /// A directory holds more entries than `tune` reads.
    TooMany {
        /// The directory.
        path: PathBuf,
        /// The bound.
        entries_max: usize,
    },
    /// A CPU list did not parse.
    CpuList {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        error: CpuListError,
    },
    /// A file's content is not what the kernel writes there.
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was expected.
        expected: &'static str,
    },
    /// No online CPU.
    NoCpus {
        /// The `online` file.
        path: PathBuf,
    },
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopologyError::Read { path, source } => {
                write!(f, "{}: cannot read: {source}", path.display())
            }
            TopologyError::TooLarge { path, bytes_max } => {
                write!(f, "{}: larger than {bytes_max} bytes", path.display())
            }
            TopologyError::TooMany { path, entries_max } => {
                write!(f, "{}: more than {entries_max} entries", path.display())
            }
            TopologyError::CpuList { path, error } => write!(f, "{}: {error}", path.display()),
            TopologyError::Malformed { path, expected } => {
                write!(f, "{}: expected {expected}", path.display())
            }
            TopologyError::NoCpus { path } => write!(f, "{}: no online CPU", path.display()),
        }
    }
}

impl std::error::Error for TopologyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TopologyError::Read { source, .. } => Some(source),
            TopologyError::CpuList { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl Machine {
    /// Reads the machine laid out under `root` (`/` for this one).
    pub fn read(root: &Path) -> Result<Machine, TopologyError> {
        let cpu_dir = root.join("sys/devices/system/cpu");
        let online_path = cpu_dir.join("online");
        let online = read_cpu_list(&online_path)?;
        if online.is_empty() {
            return Err(TopologyError::NoCpus { path: online_path });
        }
        let cpus = online
            .iter()
            .map(|id| read_cpu(&cpu_dir.join(format!("cpu{id}")), id, &online))
            .collect::<Result<Vec<_>, _>>()?;
        check_siblings(&cpu_dir, &cpus)?;
        let nodes = read_nodes(root, &online)?;
        let nics = read_nics(root)?;
        let status = root.join("proc/self/status");
        let allowed = read_allowed(&status)?;
        let cpuset = read_cpuset(root)?;
        Ok(Machine {
            cpus,
            nodes,
            nics,
            allowed,
            cpuset,
        })
    }

    /// Every online CPU.
    pub fn online(&self) -> CpuSet {
        self.cpus.iter().map(|cpu| cpu.id).collect()
    }

    /// The CPUs this process may run shards on: online, in its affinity mask and in its
    /// cgroup's cpuset.
    pub fn usable(&self) -> CpuSet {
        let usable = self.online().intersection(&self.allowed);
        match &self.cpuset {
            Some(cpuset) => usable.intersection(&cpuset.cpus),
            None => usable,
        }
    }
}

fn read_cpu(dir: &Path, id: u16, online: &CpuSet) -> Result<Cpu, TopologyError> {
    let topology = dir.join("topology");
    let package = match read_optional(&topology.join("physical_package_id"))? {
        Some((path, text)) => parse_number(&path, &text, "a package id")?,
        None => 0,
    };
    let siblings = match read_optional(&topology.join("thread_siblings_list"))? {
        Some((path, text)) => {
            let siblings = parse_cpu_list(&path, &text)?;
            if !siblings.contains(id) {
                return Err(TopologyError::Malformed {
                    path,
                    expected: "a sibling list holding the CPU itself",
                });
            }
            siblings.intersection(online)
        }
        // A CPU without topology files (some containers hide them) counts as a core of its own.
        None => [id].into_iter().collect(),
    };
    Ok(Cpu {
        id,
        package,
        siblings,
    })
}

/// Every CPU's siblings name it back with the same list: cores are told apart by their sibling
/// sets, so lists that disagree would put one CPU in two cores.
fn check_siblings(cpu_dir: &Path, cpus: &[Cpu]) -> Result<(), TopologyError> {
    for cpu in cpus {
        for sibling in cpu.siblings.iter() {
            // `cpus` is in ascending id order, as `online` iterates.
            let theirs = cpus.binary_search_by_key(&sibling, |other| other.id);
            if theirs.is_ok_and(|at| cpus[at].siblings != cpu.siblings) {
                return Err(TopologyError::Malformed {
                    path: cpu_dir.join(format!("cpu{sibling}/topology/thread_siblings_list")),
                    expected: "the same sibling list as each of its siblings",
                });
            }
        }
    }
    Ok(())
}

fn read_nodes(root: &Path, online: &CpuSet) -> Result<Vec<Node>, TopologyError> {
    let dir = root.join("sys/devices/system/node");
    let mut nodes = Vec::new();
    for (name, path) in list_dir_if_present(&dir, NODE_DIR_ENTRIES_MAX)? {
        let Some(id) = name
            .strip_prefix("node")
            .and_then(|n| n.parse::<u16>().ok())
        else {
            continue;
        };
        let cpus = read_cpu_list(&path.join("cpulist"))?.intersection(online);
        // Memory-only nodes (CXL, persistent memory) run no shard.
        if cpus.is_empty() {
            continue;
        }
        let meminfo = path.join("meminfo");
        let memory_kib = parse_mem_total(&meminfo, &read_small(&meminfo)?)?;
        nodes.push(Node {
            id,
            cpus,
            memory_kib,
        });
    }
    nodes.sort_by_key(|node| node.id);
    let covered = nodes
        .iter()
        .fold(CpuSet::new(), |set, node| set.union(&node.cpus));
    if !nodes.is_empty() && covered != *online {
        // The plan counts shards and memory per node: a CPU in no node would escape both.
        return Err(TopologyError::Malformed {
            path: dir,
            expected: "node cpulists that together hold every online CPU",
        });
    }
    if nodes.is_empty() {
        // A kernel built without NUMA has no node directory: one node, the whole machine.
        let meminfo = root.join("proc/meminfo");
        let memory_kib = parse_mem_total(&meminfo, &read_small(&meminfo)?)?;
        nodes.push(Node {
            id: 0,
            cpus: online.clone(),
            memory_kib,
        });
    }
    Ok(nodes)
}

fn read_nics(root: &Path) -> Result<Vec<Nic>, TopologyError> {
    let interrupts = read_interrupt_names(root)?;
    let mut nics = Vec::new();
    for (name, path) in list_dir_if_present(&root.join("sys/class/net"), NICS_MAX)? {
        let device = path.join("device");
        // `lo`, bridges, bonds, veths and tunnels have no device and no interrupts of their own.
        if name == "lo" || !device.exists() {
            continue;
        }
        let irqs = read_msi_irqs(root, &device)?
            .into_iter()
            .map(|number| Irq {
                number,
                name: interrupts.get(&number).cloned(),
            })
            .collect();
        nics.push(Nic {
            name: printable(&name),
            irqs,
        });
    }
    nics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nics)
}

/// The interrupt numbers of a NIC's device: `device/msi_irqs/`, or for a virtio NIC (whose
/// `device` is the virtio device, a child of the PCI function that owns the vectors) the
/// parent's `msi_irqs/`. The parent is looked up only inside `root`.
fn read_msi_irqs(root: &Path, device: &Path) -> Result<Vec<u32>, TopologyError> {
    let mut dir = device.join("msi_irqs");
    if !dir.is_dir() {
        let parent = fs::canonicalize(device)
            .ok()
            .and_then(|device| device.parent().map(|parent| parent.join("msi_irqs")));
        let root = fs::canonicalize(root).map_err(|source| TopologyError::Read {
            path: root.to_path_buf(),
            source,
        })?;
        match parent {
            Some(parent) if parent.starts_with(&root) && parent.is_dir() => dir = parent,
            _ => return Ok(Vec::new()),
        }
    }
    let mut irqs = Vec::new();
    for (name, _) in list_dir(&dir, IRQS_PER_NIC_MAX)? {
        let number = name.parse::<u32>().map_err(|_| TopologyError::Malformed {
            path: dir.join(&name),
            expected: "an entry named by an interrupt number",
        })?;
        irqs.push(number);
    }
    irqs.sort_unstable();
    Ok(irqs)
}

/// Interrupt number → name from `/proc/interrupts`. The names only label the profile's
/// comments, so a tree without the file gives no names rather than an error.
fn read_interrupt_names(root: &Path) -> Result<BTreeMap<u32, String>, TopologyError> {
    let path = root.join("proc/interrupts");
    let text = match read_bounded(&path, INTERRUPTS_BYTES_MAX) {
        Ok(text) => text,
        Err(TopologyError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(BTreeMap::new());
        }
        Err(err) => return Err(err),
    };
    Ok(text.lines().filter_map(parse_interrupt_line).collect())
}

/// ` 38:   0  17337  PCI-MSIX-0000:00:03.0  1-edge  virtio2-input.0` → (38, "virtio2-input.0"):
/// a numbered line's last field is the handler's name. Lines for NMI, LOC and the like carry a
/// name, not a number, and are skipped.
fn parse_interrupt_line(line: &str) -> Option<(u32, String)> {
    let (number, rest) = line.trim_start().split_once(':')?;
    let number = number.parse::<u32>().ok()?;
    let name = rest.split_whitespace().last()?;
    Some((number, printable(name)))
}

fn read_allowed(path: &Path) -> Result<CpuSet, TopologyError> {
    let text = read_small(path)?;
    let list = text
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .ok_or_else(|| TopologyError::Malformed {
            path: path.to_path_buf(),
            expected: "a `Cpus_allowed_list:` line",
        })?;
    parse_cpu_list(path, list)
}

/// The cgroup v2 cpuset: the `0::PATH` line of `/proc/self/cgroup`, then that cgroup's
/// `cpuset.cpus.effective` under `sys/fs/cgroup`. No v2 line (a v1-only host) or no cpuset
/// file (the controller not enabled there) means no narrowing.
fn read_cpuset(root: &Path) -> Result<Option<Cpuset>, TopologyError> {
    let cgroup_file = root.join("proc/self/cgroup");
    let Some((_, text)) = read_optional(&cgroup_file)? else {
        return Ok(None);
    };
    let Some(cgroup) = text.lines().find_map(|line| line.strip_prefix("0::")) else {
        return Ok(None);
    };
    // The path is joined under the root: only plain components, so `..` cannot leave it.
    let relative = Path::new(cgroup.trim_start_matches('/'));
    if !relative
        .components()
        .all(|part| matches!(part, Component::Normal(_)))
    {
        return Err(TopologyError::Malformed {
            path: cgroup_file,
            expected: "a cgroup path without `.` or `..`",
        });
    }
    let effective = root
        .join("sys/fs/cgroup")
        .join(relative)
        .join("cpuset.cpus.effective");
    let Some((path, text)) = read_optional(&effective)? else {
        return Ok(None);
    };
    Ok(Some(Cpuset {
        cgroup: printable(cgroup),
        cpus: parse_cpu_list(&path, &text)?,
    }))
}

/// `Node 0 MemTotal:  24683772 kB` (a node's meminfo) or `MemTotal:  24683772 kB`
/// (`/proc/meminfo`) → 24683772.
fn parse_mem_total(path: &Path, text: &str) -> Result<u64, TopologyError> {
    let malformed = || TopologyError::Malformed {
        path: path.to_path_buf(),
        expected: "a `MemTotal: N kB` line",
    };
    let line = text
        .lines()
        .find(|line| line.contains("MemTotal:"))
        .ok_or_else(malformed)?;
    let (_, value) = line.split_once("MemTotal:").ok_or_else(malformed)?;
    let mut fields = value.split_whitespace();
    let (Some(number), Some("kB"), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(malformed());
    };
    number.parse::<u64>().map_err(|_| malformed())
}

fn read_cpu_list(path: &Path) -> Result<CpuSet, TopologyError> {
    parse_cpu_list(path, &read_small(path)?)
}

fn parse_cpu_list(path: &Path, text: &str) -> Result<CpuSet, TopologyError> {
    CpuSet::parse(text).map_err(|error| TopologyError::CpuList {
        path: path.to_path_buf(),
        error,
    })
}

fn parse_number(path: &Path, text: &str, expected: &'static str) -> Result<u32, TopologyError> {
    text.trim()
        .parse::<u32>()
        .map_err(|_| TopologyError::Malformed {
            path: path.to_path_buf(),
            expected,
        })
}

fn read_small(path: &Path) -> Result<String, TopologyError> {
    read_bounded(path, SMALL_FILE_BYTES_MAX)
}

/// The file's text, or `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<(PathBuf, String)>, TopologyError> {
    match read_small(path) {
        Ok(text) => Ok(Some((path.to_path_buf(), text))),
        Err(TopologyError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

fn read_bounded(path: &Path, bytes_max: u64) -> Result<String, TopologyError> {
    let read_error = |source| TopologyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    // One byte past the bound tells a file at the bound from one beyond it.
    file.take(bytes_max + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > bytes_max {
        return Err(TopologyError::TooLarge {
            path: path.to_path_buf(),
            bytes_max,
        });
    }
    String::from_utf8(bytes).map_err(|_| TopologyError::Malformed {
        path: path.to_path_buf(),
        expected: "UTF-8 text",
    })
}

/// The entries of `dir` by name, sorted, at most `entries_max`; an absent directory is empty.
fn list_dir_if_present(
    dir: &Path,
    entries_max: usize,
) -> Result<Vec<(String, PathBuf)>, TopologyError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    list_dir(dir, entries_max)
}

fn list_dir(dir: &Path, entries_max: usize) -> Result<Vec<(String, PathBuf)>, TopologyError> {
    let read_error = |source| TopologyError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        if entries.len() == entries_max {
            return Err(TopologyError::TooMany {
                path: dir.to_path_buf(),
                entries_max,
            });
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        entries.push((name, entry.path()));
    }
    entries.sort();
    Ok(entries)
}

/// A name from the machine as it may appear in a YAML comment: printable ASCII only (anything
/// else becomes `?`), at most [`NAME_BYTES_MAX`] bytes.
fn printable(name: &str) -> String {
    name.chars()
        .take(NAME_BYTES_MAX)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupt_lines() {
        assert_eq!(
            parse_interrupt_line(
                " 38:    0   17337 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0"
            ),
            Some((38, "virtio2-input.0".to_string()))
        );
        assert_eq!(
            parse_interrupt_line("LOC:    8925315    8557564   Local timer interrupts"),
            None
        );
        assert_eq!(parse_interrupt_line("           CPU0       CPU1"), None);
        assert_eq!(parse_interrupt_line("12:"), None);
        assert_eq!(
            parse_interrupt_line("7: 1 x \u{1b}[31mred"),
            Some((7, "?[31mred".to_string()))
        );
    }

    #[test]
    fn mem_total_lines() {
        let path = Path::new("meminfo");
        assert_eq!(
            parse_mem_total(
                path,
                "Node 0 MemTotal:       24683772 kB\nNode 0 MemFree: 1 kB\n"
            )
            .unwrap(),
            24683772
        );
        assert_eq!(
            parse_mem_total(path, "MemTotal:        1024 kB\n").unwrap(),
            1024
        );
        for bad in [
            "",
            "MemTotal: 12",
            "MemTotal: x kB",
            "MemTotal: 1 MB",
            "MemTotal: 99999999999999999999999 kB",
        ] {
            assert!(
                matches!(
                    parse_mem_total(path, bad),
                    Err(TopologyError::Malformed { .. })
                ),
                "{bad:?}"
            );
        }
    }

    /// Files of a tree: path under the root, content.
    type Files<'a> = &'a [(&'a str, &'a str)];

    /// A minimal tree under the temp directory: one CPU, no node directory, the given extras.
    fn tree(name: &str, files: Files) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("tailgate-topology-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let base = [
            ("sys/devices/system/cpu/online", "0\n"),
            ("proc/meminfo", "MemTotal: 1048576 kB\n"),
            ("proc/self/status", "Cpus_allowed_list:\t0\n"),
        ];
        for (path, text) in base.iter().chain(files) {
            let path = root.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        root
    }

    #[test]
    fn a_bare_tree_is_one_cpu_on_one_node() {
        let root = tree("bare", &[]);
        let machine = Machine::read(&root).unwrap();
        fs::remove_dir_all(&root).unwrap();
        assert_eq!(machine.cpus.len(), 1);
        assert_eq!(machine.nodes.len(), 1);
        assert_eq!(machine.nodes[0].memory_kib, 1048576);
        assert!(machine.nics.is_empty());
        assert_eq!(machine.cpuset, None);
    }

    #[test]
    fn hostile_trees_are_errors_naming_the_file() {
        // (name, files over the bare tree, what the error says)
        let cases: [(&str, Files, &str); 5] = [
            (
                "siblings",
                &[
                    ("sys/devices/system/cpu/online", "0-1\n"),
                    ("proc/self/status", "Cpus_allowed_list:\t0-1\n"),
                    (
                        "sys/devices/system/cpu/cpu0/topology/thread_siblings_list",
                        "0-1\n",
                    ),
                    (
                        "sys/devices/system/cpu/cpu1/topology/thread_siblings_list",
                        "1\n",
                    ),
                ],
                "cpu1/topology/thread_siblings_list: expected the same sibling list",
            ),
            (
                "big-id",
                &[("sys/devices/system/cpu/online", "0-5000\n")],
                "online: CPU id 5000 is above",
            ),
            (
                "escape",
                &[("proc/self/cgroup", "0::/../../etc\n")],
                "cgroup: expected a cgroup path without",
            ),
            (
                "uncovered",
                &[
                    ("sys/devices/system/cpu/online", "0-1\n"),
                    ("proc/self/status", "Cpus_allowed_list:\t0-1\n"),
                    ("sys/devices/system/node/node0/cpulist", "0\n"),
                    (
                        "sys/devices/system/node/node0/meminfo",
                        "Node 0 MemTotal: 1 kB\n",
                    ),
                ],
                "node: expected node cpulists",
            ),
            (
                "no-mask",
                &[("proc/self/status", "Name:\ttailgate\n")],
                "status: expected a `Cpus_allowed_list:` line",
            ),
        ];
        for (name, files, says) in cases {
            let root = tree(name, files);
            let err = Machine::read(&root).unwrap_err().to_string();
            fs::remove_dir_all(&root).unwrap();
            assert!(err.contains(says), "{name}: {err}");
        }
    }

    #[test]
    fn printable_names_are_cut_and_cleaned() {
        assert_eq!(printable("eth0"), "eth0");
        assert_eq!(printable("a b\n"), "a?b?");
        assert_eq!(printable(&"x".repeat(100)).len(), NAME_BYTES_MAX);
    }
}
