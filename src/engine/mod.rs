//! A live dockerd, through its Engine API: connection, the daemon's own
//! lists (to cross-check a plan made from disk, or to make one where no root
//! is readable), and the calls the live executor makes.
//!
//! The client is bollard 0.19, whose models are those of API 1.49. dockgc
//! asks for the lower of 1.49 and the daemon's version, and every daemon
//! answers in the shape of the version asked: Engine 20.10 (1.41) through 29
//! (1.52) all decode. bollard 0.21 follows 1.52, where `/system/df` changed
//! shape and `/build/prune` lost `keep-storage`, so an Engine 20.10 answer
//! no longer decodes there.
//!
//! bollard is async; dockgc is not. One current-thread tokio runtime per
//! connection runs each call to completion, and [`Engine::run_all`] runs
//! a bounded number at once.

pub mod host;
pub mod inuse;
pub mod snapshot;
pub mod view;

pub use host::Host;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::query_parameters as q;
use futures_util::stream::{self, StreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;

/// The newest API version whose answers bollard 0.19's models decode.
const API_CEILING: (usize, usize) = (1, 49);

/// Generous: an image delete waits for its layers' trees to go, a build
/// prune for every record's.
const TIMEOUT_SECS: u64 = 900;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Nothing answered at the address (no socket, refused, permission
    /// denied), or what answered is not a dockerd.
    #[error("{host}: {why}")]
    Unreachable { host: String, why: String },
    /// The daemon answered with an error status.
    #[error("{call}: the daemon answered {status}: {message}")]
    Status {
        call: String,
        status: u16,
        message: String,
    },
    /// The call failed on the way (the connection dropped, a timeout, an
    /// answer that does not decode).
    #[error("{call}: {why}")]
    Failed { call: String, why: String },
}

impl EngineError {
    /// The HTTP status, when the daemon answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            EngineError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The cause and its sources, once each (bollard's errors nest hyper's,
/// which nest the io error that says what really happened).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// Facts about the daemon, from `/version` and `/info`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Info {
    /// The API version in use (the lower of the daemon's and 1.49).
    pub api_version: String,
    pub server_version: String,
    /// `DockerRootDir`: the data root of this daemon, as the daemon sees it.
    pub root_dir: Option<PathBuf>,
    /// The storage driver, or the snapshotter with the containerd store.
    pub driver: String,
    /// Images live in containerd (Engine 29's default), not in the root's
    /// graphdriver store.
    pub containerd_store: bool,
}

/// A connection to one dockerd.
pub struct Engine {
    docker: Docker,
    rt: tokio::runtime::Runtime,
    host: Host,
    pub info: Info,
}

/// An image delete's answer: what the daemon untagged and deleted (image
/// IDs and layer chain IDs, `sha256:` prefixed).
#[derive(Debug, Default, Clone)]
pub struct Deleted {
    pub untagged: Vec<String>,
    pub deleted: Vec<String>,
}

impl Engine {
    /// Connects and checks that a dockerd answers: `/version` (which also
    /// settles the API version) and `/info`.
    pub fn connect(host: &Host) -> Result<Engine, EngineError> {
        let unreachable = |why: String| EngineError::Unreachable {
            host: host.to_string(),
            why,
        };
        if let Host::Unix(p) = host {
            // bollard reports a missing socket without the OS's words.
            if let Err(e) = std::fs::symlink_metadata(p) {
                return Err(unreachable(format!("cannot use the socket: {e}")));
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| unreachable(format!("cannot start an I/O runtime: {e}")))?;
        let ceiling = bollard::ClientVersion {
            major_version: API_CEILING.0,
            minor_version: API_CEILING.1,
        };
        let docker = match host {
            Host::Unix(p) => {
                Docker::connect_with_unix(&p.to_string_lossy(), TIMEOUT_SECS, &ceiling)
            }
            Host::Tcp(_) => Docker::connect_with_http(&host.url(), TIMEOUT_SECS, &ceiling),
        }
        .map_err(|e| unreachable(chain(&e)))?;
        let docker = rt.block_on(async {
            // The runtime must be current when hyper's client is first used.
            docker.negotiate_version().await
        });
        let docker = docker.map_err(|e| match e {
            BollardError::DockerResponseServerError {
                status_code,
                message,
            } => unreachable(format!(
                "answered {status_code} to /version, not a dockerd: {message}"
            )),
            e => unreachable(format!("cannot connect: {}", chain(&e))),
        })?;
        let version = rt
            .block_on(docker.version())
            .map_err(|e| unreachable(format!("/version: {}", chain(&e))))?;
        let info = rt
            .block_on(docker.info())
            .map_err(|e| unreachable(format!("/info: {}", chain(&e))))?;
        let v = docker.client_version();
        let containerd_store = info
            .driver_status
            .iter()
            .flatten()
            .any(|kv| kv.len() == 2 && kv[0] == "driver-type" && kv[1].contains("snapshotter"));
        Ok(Engine {
            info: Info {
                api_version: format!("{}.{}", v.major_version, v.minor_version),
                server_version: version.version.unwrap_or_default(),
                root_dir: info.docker_root_dir.map(PathBuf::from),
                driver: info.driver.unwrap_or_default(),
                containerd_store,
            },
            docker,
            rt,
            host: host.clone(),
        })
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    fn call<T>(
        &self,
        call: impl Into<String>,
        f: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<T, EngineError> {
        self.rt.block_on(f).map_err(|e| classify(call.into(), e))
    }

    /// `GET /images/json?all=1`.
    pub fn images(&self) -> Result<Vec<bollard::models::ImageSummary>, EngineError> {
        let o = q::ListImagesOptions {
            all: true,
            digests: true,
            ..Default::default()
        };
        self.call("GET /images/json", self.docker.list_images(Some(o)))
    }

    /// `GET /containers/json?all=1`.
    pub fn containers(&self) -> Result<Vec<bollard::models::ContainerSummary>, EngineError> {
        let o = q::ListContainersOptions {
            all: true,
            ..Default::default()
        };
        self.call("GET /containers/json", self.docker.list_containers(Some(o)))
    }

    /// `GET /images/{id}/json`; `None` when the daemon has no such image.
    pub fn inspect_image(
        &self,
        id: &str,
    ) -> Result<Option<bollard::models::ImageInspect>, EngineError> {
        gone_is_none(self.call(
            format!("GET /images/{id}/json"),
            self.docker.inspect_image(id),
        ))
    }

    /// `GET /containers/{id}/json`; `None` when the daemon has no such container.
    pub fn inspect_container(
        &self,
        id: &str,
    ) -> Result<Option<bollard::models::ContainerInspectResponse>, EngineError> {
        gone_is_none(
            self.call(
                format!("GET /containers/{id}/json"),
                self.docker
                    .inspect_container(id, None::<q::InspectContainerOptions>),
            ),
        )
    }

    /// `GET /volumes`.
    pub fn volumes(&self) -> Result<Vec<bollard::models::Volume>, EngineError> {
        self.call(
            "GET /volumes",
            self.docker.list_volumes(None::<q::ListVolumesOptions>),
        )
        .map(|r| r.volumes.unwrap_or_default())
    }

    /// `GET /system/df`: sizes as the daemon computes them.
    pub fn df(&self) -> Result<bollard::models::SystemDataUsageResponse, EngineError> {
        self.call("GET /system/df", self.docker.df(None))
    }

    /// Runs `futures` with at most `limit` at once; answers in their order.
    pub fn run_all<F: Future>(&self, futures: Vec<F>, limit: usize) -> Vec<F::Output> {
        self.rt.block_on(
            stream::iter(futures)
                .buffered(limit.max(1))
                .collect::<Vec<_>>(),
        )
    }

    /// `DELETE /images/{name}`, never forced. `noprune`: keep untagged
    /// parents; without it the daemon removes each untagged parent left
    /// without children, reference or container (`PruneChildren`), as
    /// `docker image prune` has it do.
    pub async fn delete_image(&self, name: &str, noprune: bool) -> Result<Deleted, EngineError> {
        let o = q::RemoveImageOptions {
            force: false,
            noprune,
        };
        let items = self
            .docker
            .remove_image(name, Some(o), None)
            .await
            .map_err(|e| classify(format!("DELETE /images/{name}"), e))?;
        let mut d = Deleted::default();
        for i in items {
            d.untagged.extend(i.untagged);
            d.deleted.extend(i.deleted);
        }
        Ok(d)
    }

    /// `GET /images/{id}/json` inside a batch; `None` when it is gone.
    pub async fn find_image(
        &self,
        id: &str,
    ) -> Result<Option<bollard::models::ImageInspect>, EngineError> {
        gone_is_none(
            self.docker
                .inspect_image(id)
                .await
                .map_err(|e| classify(format!("GET /images/{id}/json"), e)),
        )
    }

    /// `GET /containers/{id}/json` inside a batch; `None` when it is gone.
    pub async fn find_container(
        &self,
        id: &str,
    ) -> Result<Option<bollard::models::ContainerInspectResponse>, EngineError> {
        gone_is_none(
            self.docker
                .inspect_container(id, None::<q::InspectContainerOptions>)
                .await
                .map_err(|e| classify(format!("GET /containers/{id}/json"), e)),
        )
    }

    /// `DELETE /containers/{id}`, never forced; `volumes`: its anonymous
    /// volumes too (`docker rm -v`).
    pub fn remove_container(&self, id: &str, volumes: bool) -> Result<(), EngineError> {
        let o = q::RemoveContainerOptions {
            v: volumes,
            force: false,
            link: false,
        };
        self.call(
            format!("DELETE /containers/{id}"),
            self.docker.remove_container(id, Some(o)),
        )
    }

    /// `DELETE /volumes/{name}`, never forced.
    pub fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        let o = q::RemoveVolumeOptions { force: false };
        self.call(
            format!("DELETE /volumes/{name}"),
            self.docker.remove_volume(name, Some(o)),
        )
    }

    /// `POST /build/prune`: `all` as `docker builder prune -a`, `until` a
    /// Go duration filter, `keep` bytes of cache to keep (`keep-storage`
    /// before API 1.48, `reserved-space` from it on). Returns the records
    /// deleted and the bytes the daemon says it reclaimed.
    pub fn prune_build(
        &self,
        all: bool,
        until: Option<&str>,
        keep: Option<u64>,
    ) -> Result<(Vec<String>, u64), EngineError> {
        let mut filters = HashMap::new();
        if let Some(u) = until {
            filters.insert("until".to_string(), vec![u.to_string()]);
        }
        let keep = keep.map(|k| i64::try_from(k).unwrap_or(i64::MAX));
        let v = self.docker.client_version();
        let reserved = (v.major_version, v.minor_version) >= (1, 48);
        let o = q::PruneBuildOptions {
            all: Some(all),
            filters: (!filters.is_empty()).then_some(filters),
            keep_storage: if reserved { None } else { keep },
            reserved_space: if reserved { keep } else { None },
            ..Default::default()
        };
        self.call("POST /build/prune", self.docker.prune_build(Some(o)))
            .map(|r| {
                (
                    r.caches_deleted.unwrap_or_default(),
                    r.space_reclaimed
                        .map_or(0, |s| u64::try_from(s).unwrap_or(0)),
                )
            })
    }
}

fn classify(call: String, e: BollardError) -> EngineError {
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => EngineError::Status {
            call,
            status: status_code,
            message,
        },
        e => EngineError::Failed {
            call,
            why: chain(&e),
        },
    }
}

fn gone_is_none<T>(r: Result<T, EngineError>) -> Result<Option<T>, EngineError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}
