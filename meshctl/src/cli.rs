//! The command line as clap reads it: the subcommands, their options and `--help` texts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::simulate;

const LONG_ABOUT: &str = "\
meshctl reads Istio traffic configuration (VirtualService, DestinationRule, ServiceEntry; \
networking.istio.io v1, v1beta1 and v1alpha3) from YAML files (-f PATH) or, when asked with \
--kubeconfig PATH and/or --context NAME, from a Kubernetes cluster read once, and answers \
three questions:

  validate   Is this configuration valid, as istiod would judge it?
  route      Where would this one request go, and why?
  simulate   How does a weighted split spread many requests over destinations,
             subsets and endpoints?

and translates it for comparison:

  envoy      The Envoy bootstrap istiod would give this client's sidecar.

Other kinds of documents (Gateway, Service, Deployment, ...) are skipped, so a whole manifest \
directory can be given. Directories are read recursively (*.yaml and *.yml, in sorted order).

Reading a cluster (validate, route, simulate, curl): --kubeconfig PATH reads the cluster of \
that kubeconfig's current context, --context NAME picks a context (alone: of the kubeconfig \
kubectl uses, the files in KUBECONFIG, else ~/.kube/config). KUBECONFIG alone is never read: \
without -f, --kubeconfig or --context the command is a usage error. The VirtualServices, \
DestinationRules and ServiceEntries (networking.istio.io/v1) and the Services, EndpointSlices \
and pod labels of every namespace are listed once, nothing is watched or written; each \
Service's endpoints are its pods. Files and a cluster together are a usage error.

Every command takes --format text|json: text for people (the default, except for route, which \
prints JSON by default), json for programs.

Exit codes:
  0  success (for validate: no errors; warnings are allowed unless --strict)
  1  the configuration has errors (or cannot be compiled into a route table)
  2  usage error, unreadable path, no YAML file found, or a cluster that cannot be read
  3  route/simulate: a virtual service covers the host but no route matches";

const EXAMPLES: &str = "\
Examples:
  # Check a directory of manifests; one line per problem, a summary on stderr
  meshctl validate deploy/istio/

  # Where does a request from the frontend go? (JSON)
  meshctl route -f deploy/istio/ --source-label app=frontend GET http://api:8080/users

  # The same, explained for humans, with a header the routes match on
  meshctl route -f vs.yaml -f dr.yaml -H 'end-user: jason' --format text GET http://reviews/

  # Does the 90/10 canary really split 90/10? Which endpoints get the traffic?
  meshctl simulate -f deploy/istio/ -n 10000 --seed 1 GET http://api:8080/

  # The same questions of a cluster: its Istio objects and its pods
  meshctl validate --kubeconfig ~/.kube/config
  meshctl route --context staging --namespace shop GET http://reviews:9080/

Run `meshctl <COMMAND> --help` for the options of each command.";

/// Validate Istio traffic configuration and explain how requests are routed.
#[derive(Debug, Parser)]
#[command(
    name = "meshctl",
    version,
    about = "Validate Istio traffic configuration and explain how requests are routed",
    long_about = LONG_ABOUT,
    after_help = EXAMPLES,
    propagate_version = true
)]
pub(crate) struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check YAML files for errors, the way istiod would (and a little more).
    #[command(
        long_about = "\
Loads every file into ONE configuration, so the cross-resource checks see everything (a \
subset a route names but no DestinationRule declares, two virtual services for one host, ...), \
then prints one line per diagnostic on stdout:

  FILE:LINE: SEVERITY: KIND/NAME: FIELD.PATH: MESSAGE

LINE is 0 when the line is unknown; a document that does not get as far as naming a resource \
shows `document N` instead of KIND/NAME. SEVERITY is error (istiod would reject the resource), \
warning (accepted, but probably not what you meant) or note (for information; printed only \
with --verbose, always counted). A summary `N errors, M warnings, K notes in F files` goes \
to stderr.

Read from a cluster (--kubeconfig, --context) instead of PATHs, every Istio object is loaded \
together in the same way, and a line names its object instead of a file (the summary counts \
`objects from the cluster`):

  NAMESPACE/NAME (KIND): SEVERITY: FIELD.PATH: MESSAGE

With --format json, stdout is one object: {files, diagnostics: [{file, line, severity, \
kind, namespace, name, document, path, message}], errors, warnings, notes, strict}; from a \
cluster, objects: [{kind, namespace, name}] instead of files, and file and line are null.

Exit code: 0 when there is no error, 1 when there is an error (or, with --strict, a \
warning), 2 when a path cannot be read, no YAML file is found or the cluster cannot be read.",
        after_help = "\
Examples:
  meshctl validate istio/                     # every *.yaml / *.yml below istio/
  meshctl validate --strict vs.yaml dr.yaml   # CI: unknown fields and warnings fail
  meshctl validate -v istio/ 2>/dev/null      # also print notes; hide the summary
  meshctl validate --format json istio/ | jq '.diagnostics[] | select(.severity == \"error\")'
  meshctl validate --kubeconfig ~/.kube/config   # the Istio objects of a cluster
  meshctl validate --context staging             # that context of KUBECONFIG / ~/.kube/config"
    )]
    Validate(ValidateArgs),

    /// Show where one request goes, and why, as one JSON object (or text).
    #[command(
        long_about = "\
Loads the configuration (any error: diagnostics on stderr, exit 1), compiles the route table \
for the calling workload (--namespace, --source-label), routes the request METHOD URL and \
prints the decision. From a cluster (--kubeconfig, --context), as the mesh reading it would: \
an object istiod would reject is left out (named on stderr) and the rest applies.

The JSON object has these keys:
  request, client       what was routed, for whom
  host                  the host the request was addressed to (URL authority, no port)
  roll                  the random number that chose among weighted destinations
                        (repeat a decision with --roll)
  virtualService        \"namespace/name\", or null when none covers the host
  route                 {index, name, matchIndex, matchName} of the http[] route, or null
  action                route | redirect | directResponse | noRoute | passthrough
  error                 \"unknownSubset\" when the chosen destination names a subset no
                        DestinationRule declares: Envoy answers 503 (flag NC); else null
  status                the status the client gets without reaching a backend
                        (404 noRoute, 503 unknownSubset, the redirect or direct-response
                        code), else null
  destinations          every weighted destination of the route
                        [{host, subset, port, weight, share, cluster, unknownSubset,
                        endpoints}] (one entry for passthrough, empty otherwise);
                        endpoints: [\"address:port\"] as the source resolved them (a
                        ServiceEntry's STATIC endpoints; from a cluster, the Service's
                        EndpointSlices), null when the host name is resolved by DNS
  chosen                the picked destination, with its index and endpoints
  policy                the DestinationRule policy of the chosen cluster (load balancer,
                        connection pool, outlier detection), or null
  rewrite               {path, uri, uriRegexRewrite, authority}: path is the path and
                        query sent upstream
  authorityRewrite      the authority sent upstream when the route rewrites it, else null
  headers               header operations in the order they apply: [{request, response}],
                        each {set, add, remove}
  redirect              {code, location}
  directResponse        {status, body}
  timeout               an Istio duration such as \"5s\", or null (disabled: Istio's default)
  retries               {attempts, perTryTimeout, retryOn, istioDefault}; Istio's default
                        (2 retries on connect-failure,refused-stream,
                        retriable-status-codes,cancelled,unavailable) when the route sets
                        none; attempts is Istio's field: the number of retries after the
                        first try
  fault, mirrors        fault injection and mirror targets of the route
  trace                 every virtual-service route considered and why each match failed

Exit code: 0, or 3 when a virtual service covers the host but no route matches (noRoute). \
An unknown subset still exits 0: the decision is reported, with error \"unknownSubset\".",
        after_help = "\
Examples:
  meshctl route -f istio/ --source-label app=frontend GET http://api:8080/
  meshctl route -f istio/ -H 'end-user: jason' -H 'x-debug: 1' GET 'http://reviews/r/1?x=2'
  meshctl route -f istio/ --roll 95 --format text GET http://api/
  meshctl route -f istio/ GET http://api/ | jq .chosen.cluster
  meshctl route --kubeconfig ~/.kube/config --namespace shop GET http://reviews:9080/ | jq '.destinations[].endpoints'"
    )]
    Route(RouteArgs),

    /// Route many requests with random rolls and show how they spread.
    #[command(
        long_about = "\
Routes the same request N times, each time with a fresh random roll from a small seeded \
generator (SplitMix64; the seed is printed, repeat a run with --seed), and counts where the \
requests went: per destination cluster (with its endpoints in the JSON), per subset, and per \
endpoint. When the destination has endpoints (registered by a ServiceEntry; from a cluster, \
its Service's pods), each request also picks an endpoint with the cluster's load balancer (ROUND_ROBIN, LEAST_REQUEST, RANDOM, consistent hash), as the data \
plane would with nothing in flight and nothing ejected.

Text tables by default, --format json for one JSON object.

Exit code: 0, or 3 when no request was routed anywhere (every one got noRoute).",
        after_help = "\
Examples:
  meshctl simulate -f istio/ -n 10000 GET http://api:8080/
  meshctl simulate -f istio/ -n 10000 --seed 1 --format json GET http://api/ | jq .destinations
  meshctl simulate --kubeconfig ~/.kube/config --namespace shop -n 10000 GET http://reviews:9080/"
    )]
    Simulate(SimulateArgs),

    /// Print the Envoy bootstrap istiod would give this client's sidecar (YAML, or JSON).
    #[command(
        long_about = "\
Translates the configuration the way istiod does for an outbound sidecar and prints a static \
Envoy bootstrap: one listener (--listen) with the HTTP connection manager and the router (and \
the fault filter when a route injects faults), one virtual host per service host and port, one \
route per match of every VirtualService route that applies to this client, and one cluster \
`outbound|PORT|SUBSET|FQDN` per destination with STATIC endpoints from the ServiceEntry, \
circuit breakers from the connection pool (2^32-1 when unset), outlier detection, load \
balancer and panic threshold from the DestinationRule. The admin interface listens on --admin.

Every decision comes from the route table the mesh compiles for this client (--namespace, \
--source-label), as `route` and `simulate` use it: which VirtualService wins a host, which \
routes and match blocks apply (sourceLabels and sourceNamespace resolved here, as istiod does \
per proxy; routes after a catch-all left out), each destination's cluster, and each cluster's \
DestinationRule (exportTo, workload selectors, the client's, the service's and the root \
namespace, in that order) and merged policy. A route to a subset no DestinationRule visible \
to the client declares names a cluster that is left out: Envoy answers 503 (NC), as the mesh \
does (a warning on stderr).

Hosts need a ServiceEntry with resolution STATIC and IP endpoints.

A DestinationRule's `tls` becomes the cluster's upstream TLS transport socket \
(envoy.transport_sockets.tls) as istiod writes it, with files instead of SDS. ISTIO_MUTUAL: \
the client certificate, key and mesh root from --workload-certificates DIR (cert-chain.pem, \
key.pem, root-cert.pem), SNI `outbound_.PORT_.SUBSET_.FQDN` (or the rule's `sni`), ALPN \
istio-http/1.1, istio, http/1.1 (what a sidecar's istio.alpn filter sends), and the server's \
names checked against the rule's subjectAltNames, else the ServiceEntry's, else the trust \
domain (--trust-domain; --no-verify-trust-domain: not at all), as the mesh's own client checks \
them; without --workload-certificates those clusters stay plaintext (a warning on stderr). \
SIMPLE and MUTUAL: the rule's files (caCertificates, else the system's roots, see \
--system-roots; clientCertificate and privateKey), `sni` or the request's host (auto_sni), \
subjectAltNames or, with neither, the host (auto_san_validation), insecureSkipVerify, caCrl. \
DISABLE: plaintext.

With -o FILE the bootstrap goes to FILE, written only when the whole bootstrap was generated.

Exit code: 0, 1 when the configuration has errors or cannot be translated, 2 on usage errors \
(and when FILE cannot be written).",
        after_help = "\
Examples:
  meshctl envoy -f istio/ -o envoy.yaml && envoy --mode validate -c envoy.yaml
  meshctl envoy -f istio/ --listen 127.0.0.1:15001 --admin 127.0.0.1:15000 --format json"
    )]
    Envoy(EnvoyArgs),

    /// Send real requests through the mesh and show what happened to them.
    #[command(
        long_about = "\
Loads the configuration, builds the mesh exactly as a service embedding it would (the same \
MeshLayer, over the mesh's hyper client) for the calling workload (--namespace, \
--source-label), and sends METHOD URL through it: routing, faults, retries, timeouts, pool \
limits, outlier detection, load balancing, mirrors.

With -n 1 (the default) it prints the routing decision, every attempt (endpoint, status or \
error, how long it took, the backoff before it), the response flags Envoy would log (UF, URX, \
UO, NR, NC, UH, UT, DI, FI, ...; '-' for none), and the response: status, headers and body. \
A request the mesh answers itself (no route, overflow, a timeout, a failed upstream) shows \
the local reply an Istio sidecar would send.

With -n N it sends N requests, at most -c at once, and prints a summary: counts per status \
(local replies included), errors per kind, attempts in all and per endpoint, response flags, \
and latency percentiles. --format json prints it as one object:
  {\"requests\": N, \"status\": {\"200\": n, ...}, \"errors\": {\"kind\": n, ...}, \"attempts\": A,
   \"endpoints\": {\"127.0.0.1:18081\": attempts sent there, ...},
   \"responseFlags\": {\"URX\": n, ...}, \"latencyMs\": {\"p50\": x, \"p90\": y, \"p99\": z}}

From a cluster (--kubeconfig, --context), the requests go to the Service's pods, as the mesh \
reading that cluster would send them. It sends only to loopback and private addresses (the \
endpoints the configuration or the cluster names, or the URL's host for a passthrough); any \
other address is refused. Runs are bounded: at most \
1,000,000 requests and --max-time seconds in all. A progress bar shows on a terminal.

-d BODY sends BODY; -d @FILE a file's bytes; -d @- streams standard input with no length \
(one request only), as curl does.

Exit code: 0 when every request got a 2xx response, 1 when any did not (or the time ran \
out), 2 on usage errors, unreadable files or a configuration that does not load.",
        after_help = "\
Examples:
  meshctl curl -f istio/ GET http://api:8080/
  meshctl curl -f istio/ -n 1000 -c 16 --format json GET http://api:8080/ | jq .status
  meshctl curl -f istio/ -H 'end-user: jason' -d @order.json POST http://api:8080/orders
  some-producer | meshctl curl -f istio/ -d @- POST http://api:8080/upload
  meshctl curl --context staging --namespace shop GET http://reviews:9080/"
    )]
    Curl(CurlArgs),
}

/// `curl` options.
#[derive(Debug, Args)]
pub(crate) struct CurlArgs {
    #[command(flatten)]
    pub(crate) config: SourceArgs,
    /// The request body: BODY as written, @FILE for a file's bytes, @- to stream standard
    /// input (no length; -n 1 only).
    #[arg(short = 'd', long = "data", value_name = "BODY|@FILE|@-")]
    pub(crate) data: Option<String>,
    /// How many requests to send (at most 1,000,000).
    #[arg(
        short = 'n',
        long = "requests",
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u64).range(1..=crate::curl::MAX_REQUESTS)
    )]
    pub(crate) requests: u64,
    /// How many requests may be in flight at once (at most 1,000).
    #[arg(
        short = 'c',
        long = "concurrency",
        value_name = "C",
        default_value_t = 1,
        value_parser = clap::value_parser!(u64).range(1..=crate::curl::MAX_CONCURRENCY)
    )]
    pub(crate) concurrency: u64,
    /// Stop after this many seconds in all (requests not finished count as not 2xx).
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) max_time: u64,
    /// Seed of the mesh's random rolls (weighted splits, faults, load balancing, backoff
    /// jitter), to repeat a run; random when not given.
    #[arg(long, value_name = "SEED")]
    pub(crate) seed: Option<u64>,
    /// Output format.
    #[arg(
        long,
        value_name = "FORMAT",
        default_value = "text",
        value_parser = format(
            "The decision, the attempts, the flags and the response (or, with -n N, a summary)",
            "One JSON object: the same, or the summary",
            &[],
        )
    )]
    pub(crate) format: Format,
    #[command(flatten)]
    pub(crate) request: RequestArgs,
}

/// `envoy` options.
#[derive(Debug, Args)]
pub(crate) struct EnvoyArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// Address of the outbound listener.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:15001")]
    pub(crate) listen: std::net::SocketAddr,
    /// Address of Envoy's admin interface.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:15000")]
    pub(crate) admin: std::net::SocketAddr,
    /// A label of the calling workload, `KEY=VALUE` (for `sourceLabels` matches); repeat for
    /// more.
    #[arg(long = "source-label", value_name = "KEY=VALUE")]
    pub(crate) source_labels: Vec<String>,
    /// Namespace of the calling workload.
    #[arg(long, value_name = "NS", default_value = "default")]
    pub(crate) namespace: String,
    /// Output format (`yaml`, the spelling before every subcommand took `text|json`, is
    /// still read as `text`).
    #[arg(
        long,
        value_name = "FORMAT",
        default_value = "text",
        value_parser = format(
            "YAML (what `envoy -c file.yaml` reads)",
            "JSON (`envoy -c file.json`)",
            &["yaml"],
        )
    )]
    pub(crate) format: Format,
    /// Write the bootstrap to FILE instead of stdout, only when it was generated: through a
    /// temporary file in FILE's directory renamed over FILE, so a failed run leaves FILE as it
    /// was (unlike `> FILE`, which empties it first).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Give every cluster whose DestinationRule sets no `retryBudget` Envoy's default retry
    /// budget (20% of active requests, at least 3 retries), to compare Envoy with a mesh built
    /// with `MeshBuilder::retry_budget(Some(RetryBudget::default()))`. Without it the bootstrap
    /// is what istiod writes: no budget, only `max_retries`.
    #[arg(long)]
    pub(crate) retry_budget: bool,
    /// Accepted for compatibility: what istiod writes is now the default.
    #[arg(long, hide = true)]
    pub(crate) istio_exact: bool,
    /// The directory with the workload's `cert-chain.pem`, `key.pem` and `root-cert.pem`
    /// (istio-agent's layout for proxyless workloads, the one `MeshClient` reads), for the
    /// clusters whose DestinationRule says `tls: {mode: ISTIO_MUTUAL}`. Without it those
    /// clusters are written in plaintext, with a warning.
    #[arg(long, value_name = "DIR")]
    pub(crate) workload_certificates: Option<PathBuf>,
    /// The mesh's trust domain: an `ISTIO_MUTUAL` cluster with no identity to expect (no
    /// `subjectAltNames` in the DestinationRule or the ServiceEntry) requires a SPIFFE ID of
    /// it, as `MeshClient` does by default.
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    pub(crate) trust_domain: String,
    /// `ISTIO_MUTUAL` clusters with no identity to expect accept any certificate the mesh root
    /// signed, as istiod writes them (and as `MeshClientBuilder::verify_trust_domain(false)`).
    #[arg(long)]
    pub(crate) no_verify_trust_domain: bool,
    /// The system's trust roots (a PEM bundle), for `SIMPLE` and `MUTUAL` clusters without
    /// `caCertificates`. Default: the first of /etc/ssl/certs/ca-certificates.crt,
    /// /etc/pki/tls/certs/ca-bundle.crt, /etc/ssl/ca-bundle.pem, /etc/ssl/cert.pem that exists.
    #[arg(long, value_name = "FILE")]
    pub(crate) system_roots: Option<PathBuf>,
}

/// `validate` options.
#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Files or directories (read recursively: *.yaml and *.yml, in sorted order).
    #[arg(value_name = "PATH", conflicts_with_all = ["kubeconfig", "context"])]
    pub(crate) paths: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
    /// Unknown fields become errors, and warnings fail the run (exit 1).
    #[arg(long)]
    pub(crate) strict: bool,
    /// Also print notes (they are always counted in the summary).
    #[arg(short, long)]
    pub(crate) verbose: bool,
    /// Output format.
    #[arg(
        long,
        value_name = "FORMAT",
        default_value = "text",
        value_parser = format(
            "One line per diagnostic, `FILE:LINE: SEVERITY: KIND/NAME: PATH: MESSAGE` (notes \
             only with --verbose), and a summary on stderr",
            "One JSON object: every diagnostic, notes included, and the counts",
            &[],
        )
    )]
    pub(crate) format: Format,
}

/// How `validate` prints its diagnostics: the format every subcommand takes.
pub(crate) type ValidateFormat = Format;

/// Where the configuration comes from (`envoy`: files only).
#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// A configuration file or directory; repeat for more (`-f a.yaml -f dir/`).
    #[arg(short = 'f', long = "file", value_name = "PATH", required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// Do not print configuration warnings on stderr.
    #[arg(short, long)]
    pub(crate) quiet: bool,
}

/// Where the configuration (and the endpoints) come from: files, or a cluster
/// (`route`, `simulate`, `curl`).
#[derive(Debug, Args)]
pub(crate) struct SourceArgs {
    /// A configuration file or directory; repeat for more (`-f a.yaml -f dir/`).
    #[arg(
        short = 'f',
        long = "file",
        value_name = "PATH",
        conflicts_with_all = ["kubeconfig", "context"]
    )]
    pub(crate) files: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
    /// Do not print configuration warnings on stderr.
    #[arg(short, long)]
    pub(crate) quiet: bool,
}

/// The cluster to read instead of files.
#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    /// Read the Istio objects, Services, EndpointSlices and pod labels once from the cluster of
    /// this kubeconfig file (its current context, or --context) instead of files.
    #[arg(long, value_name = "PATH")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use. Without --kubeconfig: read the cluster of this context
    /// of the kubeconfig kubectl uses (the files in KUBECONFIG, else ~/.kube/config).
    #[arg(long, value_name = "NAME")]
    pub(crate) context: Option<String>,
}

impl ClusterArgs {
    /// Whether a cluster is asked for.
    pub(crate) fn is_given(&self) -> bool {
        self.kubeconfig.is_some() || self.context.is_some()
    }
}

/// The request and the client that sends it.
#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    /// A request header, `NAME: VALUE`; repeat for more.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub(crate) headers: Vec<String>,
    /// A label of the calling workload, `KEY=VALUE` (for `sourceLabels` matches); repeat for
    /// more.
    #[arg(long = "source-label", value_name = "KEY=VALUE")]
    pub(crate) source_labels: Vec<String>,
    /// Namespace of the calling workload (for `sourceNamespace`, `exportTo`, short host names).
    #[arg(long, value_name = "NS", default_value = "default")]
    pub(crate) namespace: String,
    /// Act as this gateway (`namespace/name`) instead of a sidecar (`mesh`).
    #[arg(long, value_name = "NS/NAME")]
    pub(crate) gateway: Option<String>,
    /// The destination (service) port, when it is not the URL's (default: the URL's port,
    /// else 80 for http and 443 for https).
    #[arg(long, value_name = "PORT")]
    pub(crate) port: Option<u16>,
    /// The request method, e.g. GET (sent as written: methods are case-sensitive).
    #[arg(value_name = "METHOD")]
    pub(crate) method: String,
    /// The request URL, e.g. http://api:8080/users?id=1 (`http://` is assumed when missing).
    #[arg(value_name = "URL")]
    pub(crate) url: String,
}

/// How a subcommand prints its result. `--format text|json` means the same for every
/// subcommand: `text` for people (the default, except for `route`), `json` for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// For people.
    Text,
    /// For programs: one JSON object (`envoy`: the bootstrap as JSON).
    Json,
}

/// The parser of a subcommand's `--format`: `text` and `json`, each with what it prints for
/// that subcommand, and `hidden` spellings older versions took, read as `text`.
fn format(
    text: &'static str,
    json: &'static str,
    hidden: &'static [&'static str],
) -> impl clap::builder::TypedValueParser<Value = Format> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
    let values = [
        PossibleValue::new("text").help(text),
        PossibleValue::new("json").help(json),
    ]
    .into_iter()
    .chain(hidden.iter().map(|h| PossibleValue::new(h).hide(true)));
    PossibleValuesParser::new(values).map(|s| match s.as_str() {
        "json" => Format::Json,
        _ => Format::Text,
    })
}

/// `route` options.
#[derive(Debug, Args)]
pub(crate) struct RouteArgs {
    #[command(flatten)]
    pub(crate) config: SourceArgs,
    /// The roll that picks among weighted destinations (`roll % total weight`); random when
    /// not given. The JSON output reports the roll used.
    #[arg(long, value_name = "N")]
    pub(crate) roll: Option<u64>,
    /// Output format.
    #[arg(
        long,
        value_name = "FORMAT",
        default_value = "json",
        value_parser = format("A human-readable explanation", "One JSON object", &[])
    )]
    pub(crate) format: Format,
    #[command(flatten)]
    pub(crate) request: RequestArgs,
}

/// `simulate` options.
#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    #[command(flatten)]
    pub(crate) config: SourceArgs,
    /// How many requests to route (at most 100,000,000).
    #[arg(
        short = 'n',
        long = "requests",
        value_name = "N",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(1..=simulate::MAX_REQUESTS)
    )]
    pub(crate) requests: u64,
    /// Seed of the random generator (default: from the clock; the seed used is printed).
    #[arg(long, value_name = "SEED")]
    pub(crate) seed: Option<u64>,
    /// Output format.
    #[arg(
        long,
        value_name = "FORMAT",
        default_value = "text",
        value_parser = format(
            "Tables: per outcome, destination, subset and endpoint",
            "One JSON object",
            &[],
        )
    )]
    pub(crate) format: Format,
    /// `--format json`, as it was spelt before every subcommand took `--format`.
    #[arg(long, hide = true, conflicts_with = "format")]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) request: RequestArgs,
}

impl SimulateArgs {
    /// The output format, `--json` included.
    pub(crate) fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            self.format
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn file_flag_does_not_swallow_the_method() {
        let cli = Cli::try_parse_from([
            "meshctl",
            "route",
            "-f",
            "a.yaml",
            "-f",
            "dir",
            "GET",
            "http://x/",
        ])
        .unwrap();
        let Command::Route(a) = cli.command else {
            panic!("not route")
        };
        assert_eq!(a.config.files.len(), 2);
        assert_eq!(a.request.method, "GET");
        assert_eq!(a.request.url, "http://x/");
        assert_eq!(a.format, Format::Json);
    }

    #[test]
    fn simulate_json_flag_is_format_json() {
        let parse = |extra: &[&str]| {
            let args = [
                &["meshctl", "simulate", "-f", "a"][..],
                extra,
                &["GET", "http://x/"][..],
            ]
            .concat();
            let Command::Simulate(a) = Cli::try_parse_from(args).unwrap().command else {
                panic!("not simulate")
            };
            a.format()
        };
        assert_eq!(parse(&[]), Format::Text);
        assert_eq!(parse(&["--json"]), Format::Json);
        assert_eq!(parse(&["--format", "json"]), Format::Json);
    }

    #[test]
    fn simulate_request_count_is_bounded() {
        let too_many = (simulate::MAX_REQUESTS + 1).to_string();
        for n in ["0", too_many.as_str()] {
            assert!(Cli::try_parse_from([
                "meshctl",
                "simulate",
                "-f",
                "a",
                "-n",
                n,
                "GET",
                "http://x/"
            ])
            .is_err());
        }
    }
}
