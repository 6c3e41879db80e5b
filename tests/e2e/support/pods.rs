//! Backends started together as the pods of [`API`](super::upstream::API), each named and
//! labelled with its `version`.

use mesh_tests::Backend;

use super::yaml::{load, ServiceEntry};

/// Backends behind one host, told apart by name and `version` label.
#[derive(Debug)]
pub(crate) struct Pods {
    /// Every pod, in the order started.
    pub(crate) all: Vec<Backend>,
}

impl Pods {
    /// Starts one backend per `(name, version)`, labelled `version` and with `labels`.
    pub(crate) async fn start(pods: &[(&str, &str)], labels: &[(&str, &str)]) -> Pods {
        let mut all = Vec::new();
        for (name, version) in pods {
            let builder = labels
                .iter()
                .fold(Backend::builder().name(*name), |b, (k, v)| b.label(*k, *v));
            all.push(builder.label("version", *version).start().await.unwrap());
        }
        Pods { all }
    }

    /// Four pods: `v1-a` and `v1-b` (version `v1`), `v2-a` and `v2-b` (version `v2`), each
    /// also with `labels`.
    pub(crate) async fn four(labels: &[(&str, &str)]) -> Pods {
        let pods = [
            ("v1-a", "v1"),
            ("v1-b", "v1"),
            ("v2-a", "v2"),
            ("v2-b", "v2"),
        ];
        Pods::start(&pods, labels).await
    }

    /// The pod named `name`.
    pub(crate) fn get(&self, name: &str) -> &Backend {
        self.all.iter().find(|b| b.name() == name).unwrap()
    }

    /// The pods of `version`.
    pub(crate) fn of_version<'a>(&'a self, version: &'a str) -> impl Iterator<Item = &'a Backend> {
        self.all
            .iter()
            .filter(move |b| b.labels()["version"] == version)
    }

    /// Requests the pods of `version` received.
    pub(crate) fn received(&self, version: &str) -> u64 {
        self.of_version(version).map(Backend::count).sum()
    }

    /// Resets every pod's counts and records.
    pub(crate) fn reset_counts(&self) {
        for b in &self.all {
            b.reset_counts();
        }
    }

    /// The ServiceEntry declaring the pods: one endpoint each, with its labels.
    pub(crate) fn service_entry(&self) -> String {
        ServiceEntry::new(&super::upstream::API)
            .pods(&self.all)
            .to_string()
    }

    /// `docs` and the pods' ServiceEntry, loaded ([`load`]).
    pub(crate) fn config(&self, docs: &[&str]) -> mesh_model::MeshConfig {
        let entry = self.service_entry();
        let mut docs = docs.to_vec();
        docs.push(&entry);
        load(&docs)
    }
}
