//! Stopped containers as `docker create` (and `docker run`, for three in
//! four) leave them: the init and RW driver dirs, `layerdb/mounts/<id>`,
//! and `containers/<id>/` with `config.v2.json` and `hostconfig.json` in
//! Go's field order (moby `daemon/container/container.go` `Container`,
//! `api/types/container/hostconfig.go` `HostConfig`).

use super::DRIVER;
use super::SynthImageKind;
use super::fs::Ctx;
use super::gofmt::{go_str, go_str_list, rfc3339nano};
use super::images::{ImageDone, PATH_ENV, container_config};
use super::layers::LayerDone;
use super::plan::{ContainerPlan, Plan};
use super::rng::{Rng, STREAM_CONTAINER};
use crate::ids::{ChainId, ContainerId, Digest};
use crate::store::graphdriver::Paths;
use crate::store::paths::ContainerDir;
use rayon::prelude::*;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

pub(super) struct ContainerDone {
    pub(super) id: String,
    pub(super) mount_id: String,
    pub(super) size_rw: u64,
}

const HOSTCONFIG: &str = r#"{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"json-file","Config":{}},"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"CapAdd":null,"CapDrop":null,"CgroupnsMode":"host","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"private","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"","ShmSize":67108864,"Runtime":"runc","ConsoleSize":[0,0],"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"KernelMemory":0,"KernelMemoryTCP":0,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":null,"OomKillDisable":false,"PidsLimit":null,"Ulimits":[],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":["/proc/asound","/proc/acpi","/proc/kcore","/proc/keys","/proc/latency_stats","/proc/timer_list","/proc/timer_stats","/proc/sched_debug","/proc/scsi","/sys/firmware"],"ReadonlyPaths":["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]}"#;

const NETWORK_SETTINGS: &str = r#"{"Bridge":"","SandboxID":"","HairpinMode":false,"LinkLocalIPv6Address":"","LinkLocalIPv6PrefixLen":0,"Networks":{"bridge":{"IPAMConfig":null,"Links":null,"Aliases":null,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"MacAddress":"","DriverOpts":null,"IPAMOperational":false}},"Service":null,"Ports":null,"SandboxKey":"","SecondaryIPAddresses":null,"SecondaryIPv6Addresses":null,"IsAnonymousEndpoint":false,"HasSwarmEndpoint":false}"#;

const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

const RESOLV: &str = "nameserver 192.0.2.53\noptions ndots:0\n";

/// What moby `daemon/initlayer/setup_unix.go` `Setup` puts in an init
/// layer: directories, empty files (0755, as it creates them), and
/// `etc/mtab` → `/proc/mounts`.
const INIT_DIRS: [&str; 6] = ["dev", "dev/pts", "dev/shm", "etc", "proc", "sys"];
const INIT_FILES: [&str; 5] = [
    ".dockerenv",
    "dev/console",
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
];

pub(super) fn write_containers(
    ctx: &Ctx,
    plan: &Plan,
    layers: &[Option<LayerDone>],
    images: &[ImageDone],
) -> io::Result<Vec<ContainerDone>> {
    plan.containers
        .par_iter()
        .enumerate()
        .map(|(c, cp)| write_container(ctx, plan, layers, images, c, cp))
        .collect()
}

/// The IDs and times one container's creation draws, before anything else.
struct Container<'a> {
    index: usize,
    plan: &'a ContainerPlan,
    id: String,
    mount_id: String,
    init_id: String,
    init_link: String,
    rw_link: String,
    started_at: i64,
    finished_at: i64,
}

impl<'a> Container<'a> {
    fn draw(index: usize, plan: &'a ContainerPlan, rng: &mut Rng) -> Self {
        let id = rng.hex64();
        let mount_id = rng.hex64();
        let init_id = format!("{mount_id}-init");
        let init_link = rng.link_id();
        let rw_link = rng.link_id();
        let started_at = plan.created.0 + 1 + rng.below(60) as i64;
        let finished_at = started_at + 1 + rng.below(86_400) as i64;
        Container {
            index,
            plan,
            id,
            mount_id,
            init_id,
            init_link,
            rw_link,
            started_at,
            finished_at,
        }
    }

    fn started(&self) -> bool {
        self.plan.started
    }
}

fn write_container(
    ctx: &Ctx,
    plan: &Plan,
    layers: &[Option<LayerDone>],
    images: &[ImageDone],
    c: usize,
    cp: &ContainerPlan,
) -> io::Result<ContainerDone> {
    let mut rng = Rng::new(plan.seed, STREAM_CONTAINER, c as u64);
    let k = Container::draw(c, cp, &mut rng);
    let top = plan.images[cp.image as usize].top;
    let init_lower = write_init_layer(ctx, plan, &k, top)?;
    let size_rw = write_rw_layer(ctx, &k, init_lower.as_deref(), &mut rng)?;
    let top_chain = top.map(|t| layers[t as usize].as_ref().expect("layer written").chain);
    write_mount(ctx, &k, top_chain)?;
    let dir = ctx.paths.docker().container_dir(&ContainerId(k.id.clone()));
    let resources = write_container_dir(ctx, &dir, &k, &mut rng)?;
    let volumes_dir = ctx.paths.docker().volumes();
    let config = config_v2(
        plan,
        &images[cp.image as usize],
        &k,
        &resources,
        &volumes_dir,
        &mut rng,
    );
    ctx.file(&dir.config(), config.as_bytes(), 0o600)?;
    ctx.file(
        &dir.hostconfig(),
        format!("{}\n", hostconfig(cp)).as_bytes(),
        0o644,
    )?;
    Ok(ContainerDone {
        id: k.id,
        mount_id: k.mount_id,
        size_rw,
    })
}

/// The init layer on the image's top layer, committed (the RW layer sits
/// on it). Returns its `lower`, `None` for an image without layers.
fn write_init_layer(
    ctx: &Ctx,
    plan: &Plan,
    k: &Container<'_>,
    top: Option<u32>,
) -> io::Result<Option<String>> {
    let init_lower = top.map(|t| plan.lower_from(t));
    let diff = ctx.driver_dir(&k.init_id, &k.init_link, init_lower.as_deref())?;
    ctx.commit(&k.init_id)?;
    if init_lower.is_some() {
        // Created by the kernel at the first mount (dockerd mounts it to populate it).
        ctx.dir(&ctx.paths.kernel_work_dir(&k.init_id), 0o000)?;
    }
    for d in INIT_DIRS {
        ctx.dir(&diff.join(d), 0o755)?;
    }
    for f in INIT_FILES {
        ctx.file(&diff.join(f), b"", 0o755)?;
    }
    std::os::unix::fs::symlink("/proc/mounts", diff.join("etc/mtab"))?;
    Ok(init_lower)
}

/// The RW layer on the init layer; a container that ran wrote
/// `data/out-<c>.bin` and `tmp/note.txt` into it. Returns its `directory.Size`.
fn write_rw_layer(
    ctx: &Ctx,
    k: &Container<'_>,
    init_lower: Option<&str>,
    rng: &mut Rng,
) -> io::Result<u64> {
    let mut rw_lower = Paths::lower_entry(&k.init_link);
    if let Some(l) = init_lower {
        rw_lower = format!("{rw_lower}:{l}");
    }
    let rw_diff = ctx.driver_dir(&k.mount_id, &k.rw_link, Some(&rw_lower))?;
    // `docker create` already mounts the RW layer once, so the kernel's work/work exists.
    ctx.dir(&ctx.paths.kernel_work_dir(&k.mount_id), 0o000)?;
    if !k.started() {
        return Ok(0);
    }
    let c = k.index;
    ctx.dir(&rw_diff.join("data"), 0o755)?;
    let mut body = vec![0u8; 64 + rng.index(4000)];
    rng.fill(&mut body);
    ctx.file(&rw_diff.join(format!("data/out-{c}.bin")), &body, 0o644)?;
    ctx.dir(&rw_diff.join("tmp"), 0o1777)?;
    let note = format!("synth container {c}\n");
    ctx.file(&rw_diff.join("tmp/note.txt"), note.as_bytes(), 0o644)?;
    Ok((body.len() + note.len()) as u64)
}

/// `layerdb/mounts/<id>`: the RW layer's `mount-id`, `init-id` and parent chain.
fn write_mount(ctx: &Ctx, k: &Container<'_>, parent: Option<ChainId>) -> io::Result<()> {
    let m = ctx.paths.mount_entry(&k.id);
    ctx.dir(m.dir(), 0o755)?;
    ctx.file(&m.init_id(), k.init_id.as_bytes(), 0o644)?;
    ctx.file(&m.mount_id(), k.mount_id.as_bytes(), 0o644)?;
    if let Some(chain) = parent {
        ctx.file(&m.parent(), chain.to_string().as_bytes(), 0o644)?;
    }
    Ok(())
}

/// The paths `config.v2.json` names: empty for a container that never started.
#[derive(Default)]
struct Resources {
    log: String,
    hostname: String,
    hosts: String,
    resolv_conf: String,
}

/// `containers/<id>/`: `checkpoints/`, and for a container that ran its
/// `mounts/`, hostname, hosts, resolv.conf (with libnetwork's hash) and log.
fn write_container_dir(
    ctx: &Ctx,
    dir: &ContainerDir,
    k: &Container<'_>,
    rng: &mut Rng,
) -> io::Result<Resources> {
    ctx.dir(dir.dir(), 0o710)?;
    ctx.dir(&dir.checkpoints(), 0o700)?;
    if !k.started() {
        return Ok(Resources::default());
    }
    ctx.dir(&dir.mounts(), 0o710)?;
    let hostname = format!("{}\n", &k.id[..12]);
    ctx.file(&dir.hostname(), hostname.as_bytes(), 0o644)?;
    ctx.file(&dir.hosts(), HOSTS.as_bytes(), 0o644)?;
    ctx.file(&dir.resolv_conf(), RESOLV.as_bytes(), 0o644)?;
    let hash = Digest::of_bytes(RESOLV.as_bytes()).to_string();
    ctx.file(&dir.resolv_conf_hash(), hash.as_bytes(), 0o644)?;
    let log = json_log(k, rng);
    ctx.file(&dir.json_log(), log.as_bytes(), 0o640)?;
    let s = |p: &Path| p.to_string_lossy().into_owned();
    Ok(Resources {
        log: s(&dir.json_log()),
        hostname: s(&dir.hostname()),
        hosts: s(&dir.hosts()),
        resolv_conf: s(&dir.resolv_conf()),
    })
}

/// The json-file log driver's lines (moby `daemon/logger/jsonfilelog`):
/// every third on stderr, with characters Go escapes.
fn json_log(k: &Container<'_>, rng: &mut Rng) -> String {
    let c = k.index;
    let mut log = String::new();
    for line in 0..3 + rng.index(8) {
        let (stream, text) = if line % 3 == 2 {
            (
                "stderr",
                format!("warn: step {line} took <{}ms> & retried\n", rng.below(900)),
            )
        } else {
            ("stdout", format!("synth-{c} line {line}\n"))
        };
        log.push_str("{\"log\":");
        go_str(&mut log, &text);
        let _ = writeln!(
            log,
            ",\"stream\":\"{stream}\",\"time\":\"{}\"}}",
            rfc3339nano(k.started_at, (line as u32 + 1) * 1_000_003)
        );
    }
    log
}

/// `config.v2.json`, one line and a newline, as `json.Marshal` of moby's
/// `Container` writes it.
fn config_v2(
    plan: &Plan,
    image: &ImageDone,
    k: &Container<'_>,
    res: &Resources,
    volumes_dir: &Path,
    rng: &mut Rng,
) -> String {
    let (c, cp, id) = (k.index, k.plan, &k.id);
    let zero = "0001-01-01T00:00:00Z".to_string();
    let (start_s, finish_s, exit) = if cp.started {
        (
            rfc3339nano(k.started_at, rng.below(1_000_000_000) as u32),
            rfc3339nano(k.finished_at, rng.below(1_000_000_000) as u32),
            cp.exit_code,
        )
    } else {
        (zero.clone(), zero, 0)
    };
    let config_image = match plan.images[cp.image as usize].kind {
        SynthImageKind::Tagged => image.refs[0].clone(),
        SynthImageKind::Dangling => format!("{}:old", plan.repo(cp.image as usize)),
        _ => image.id.hex()[..12].to_string(),
    };
    let args = vec![
        "-c".to_string(),
        format!("synth-job {c} > /data/out-{c}.bin"),
    ];
    let mut cmd = vec!["sh".to_string()];
    cmd.extend(args.iter().cloned());
    let env = vec![PATH_ENV.to_string(), format!("SYNTH_BUILD={}", cp.image)];

    let mut s = String::with_capacity(3072);
    let _ = write!(
        s,
        "{{\"StreamConfig\":{{}},\"State\":{{\"Running\":false,\"Paused\":false,\"Restarting\":false,\"OOMKilled\":false,\"RemovalInProgress\":false,\"Dead\":false,\"Pid\":0,\"ExitCode\":{exit},\"Error\":\"\",\"StartedAt\":\"{start_s}\",\"FinishedAt\":\"{finish_s}\",\"Health\":null}},\"ID\":\"{id}\",\"Created\":\"{}\",\"Managed\":false,\"Path\":\"sh\",\"Args\":",
        rfc3339nano(cp.created.0, cp.created.1)
    );
    go_str_list(&mut s, &args);
    s.push_str(",\"Config\":");
    let mut config = String::with_capacity(1024);
    container_config(
        &mut config,
        &id[..12],
        &env,
        &cmd,
        &config_image,
        &plan.labels(cp.image as usize),
        true,
    );
    s.push_str(&config_volumes(&config, cp));
    let _ = write!(
        s,
        ",\"Image\":\"{}\",\"NetworkSettings\":{NETWORK_SETTINGS},\"LogPath\":",
        image.id
    );
    go_str(&mut s, &res.log);
    let _ = write!(
        s,
        ",\"Name\":\"/synth-{c}\",\"Driver\":\"{DRIVER}\",\"OS\":\"linux\",\"MountLabel\":\"\",\"ProcessLabel\":\"\",\"RestartCount\":0,\"HasBeenStartedBefore\":{},\"HasBeenManuallyStopped\":false,\"MountPoints\":{},\"SecretReferences\":null,\"ConfigReferences\":null,\"AppArmorProfile\":\"\",\"HostnamePath\":",
        cp.started,
        mount_points(volumes_dir, cp)
    );
    go_str(&mut s, &res.hostname);
    s.push_str(",\"HostsPath\":");
    go_str(&mut s, &res.hosts);
    s.push_str(",\"ShmPath\":\"\",\"ResolvConfPath\":");
    go_str(&mut s, &res.resolv_conf);
    s.push_str(",\"SeccompProfile\":\"\",\"NoNewPrivileges\":false,\"LocalLogCacheMeta\":{\"HaveNotifyEnabled\":false}}\n");
    s
}

/// `HostConfig.Binds`: `name:/dest` of each named volume (`-v name:/dest`).
fn hostconfig(cp: &ContainerPlan) -> String {
    let binds: Vec<String> = cp
        .mounts
        .iter()
        .filter(|m| !m.anonymous)
        .map(|m| format!("{}:{}", m.volume, m.destination))
        .collect();
    if binds.is_empty() {
        return HOSTCONFIG.to_string();
    }
    let mut b = String::new();
    go_str_list(&mut b, &binds);
    HOSTCONFIG.replacen("\"Binds\":null", &format!("\"Binds\":{b}"), 1)
}

/// `Config.Volumes`: the destinations of anonymous volumes (`-v /dest`).
fn config_volumes(config: &str, cp: &ContainerPlan) -> String {
    let mut anon: Vec<&str> = cp
        .mounts
        .iter()
        .filter(|m| m.anonymous)
        .map(|m| m.destination.as_str())
        .collect();
    if anon.is_empty() {
        return config.to_string();
    }
    anon.sort_unstable();
    let mut v = String::from("{");
    for (i, d) in anon.iter().enumerate() {
        if i > 0 {
            v.push(',');
        }
        go_str(&mut v, d);
        v.push_str(":{}");
    }
    v.push('}');
    config.replacen("\"Volumes\":null", &format!("\"Volumes\":{v}"), 1)
}

/// `MountPoints`, keyed by destination (Go sorts map keys), as moby's
/// `volumemounts.MountPoint` marshals them: a named volume's with its
/// source path, `Relabel` and `Spec` from `-v name:/dest`; an anonymous
/// one's (`-v /dest`) with neither.
fn mount_points(volumes_dir: &Path, cp: &ContainerPlan) -> String {
    let mut mounts: Vec<_> = cp.mounts.iter().collect();
    mounts.sort_by(|a, b| a.destination.cmp(&b.destination));
    let mut s = String::from("{");
    for (i, m) in mounts.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        go_str(&mut s, &m.destination);
        s.push_str(":{\"Source\":");
        if m.anonymous {
            s.push_str("\"\"");
        } else {
            let source = volumes_dir.join(&m.volume).join("_data");
            go_str(&mut s, &source.to_string_lossy());
        }
        s.push_str(",\"Destination\":");
        go_str(&mut s, &m.destination);
        s.push_str(",\"RW\":true,\"Name\":");
        go_str(&mut s, &m.volume);
        s.push_str(",\"Driver\":\"local\",\"Type\":\"volume\",");
        if m.anonymous {
            s.push_str("\"Spec\":{}");
        } else {
            s.push_str("\"Relabel\":\"z\",\"Spec\":{\"Type\":\"volume\",\"Source\":");
            go_str(&mut s, &m.volume);
            s.push_str(",\"Target\":");
            go_str(&mut s, &m.destination);
            s.push('}');
        }
        s.push_str(",\"SkipMountpointCreation\":false}");
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{directory_size, make_root, mode, read};
    use super::super::{SynthImageKind, SynthSpec};

    /// The config names the container's directory and image, the mount's
    /// parent is the image's top layer, the RW layer sits on a committed
    /// init layer, and a container that ran has its log.
    #[test]
    fn demo_containers_sit_on_their_images() {
        let spec = SynthSpec::demo();
        let (_tmp, root, report) = make_root(&spec);
        let img = root.join("image/overlay2");
        let home = root.join("overlay2");
        assert_eq!(report.container_list.len(), spec.containers);
        for c in &report.container_list {
            let cdir = root.join("containers").join(&c.id.0);
            let raw = read(&cdir.join("config.v2.json"));
            assert!(raw.ends_with("}\n"));
            let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
            assert_eq!(v["ID"], c.id.0);
            assert_eq!(v["Name"], format!("/{}", c.name));
            assert_eq!(v["Driver"], "overlay2");
            assert_eq!(v["Image"], c.image.to_string());
            assert_eq!(mode(&cdir.join("config.v2.json")), 0o600);
            let m = img.join("layerdb/mounts").join(&c.id.0);
            assert_eq!(read(&m.join("mount-id")), c.mount_id);
            assert_eq!(read(&m.join("init-id")), format!("{}-init", c.mount_id));
            let im = report.image_list.iter().find(|i| i.id == c.image).unwrap();
            assert_eq!(
                read(&m.join("parent")),
                im.chain.last().unwrap().to_string()
            );
            assert_eq!(
                directory_size(&home.join(&c.mount_id).join("diff")),
                c.size_rw
            );
            let init = home.join(format!("{}-init", c.mount_id));
            assert!(init.join("committed").is_file());
            assert_eq!(
                directory_size(&init.join("diff")),
                12,
                "etc/mtab → /proc/mounts"
            );
            let init_link = read(&init.join("link"));
            assert!(
                read(&home.join(&c.mount_id).join("lower")).starts_with(&format!("l/{init_link}:"))
            );
            if c.started {
                let log = read(&cdir.join(format!("{}-json.log", c.id.0)));
                for line in log.lines() {
                    serde_json::from_str::<serde_json::Value>(line).unwrap();
                }
                assert_eq!(
                    v["LogPath"],
                    cdir.join(format!("{}-json.log", c.id.0)).to_str().unwrap()
                );
            }
        }
        assert!(
            report
                .image_list
                .iter()
                .any(|i| i.kind == SynthImageKind::Dangling && i.containers > 0)
        );
    }
}
