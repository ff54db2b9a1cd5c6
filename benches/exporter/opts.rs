//! The benchmark's command line: the options, their defaults and the usage text.

use crate::UNLIMITED;

const USAGE: &str = "usage: cargo bench --bench exporter -- [--customers N] [--rate-limit R] \
[--sweep-customers N] [--scrapes N] [--no-nginx]

  --customers N        customers of the simulated partner (default 10000)
  --rate-limit R       requests per minute, enforced by the simulator and set on the
                       exporter in the rate-limited poll (default 3 x customers: ~20 s)
  --sweep-customers N  customers of the concurrency sweep (default min(customers, 2000))
  --scrapes N          scrapes per scraper and run, 8 scrapers (default 40)
  --soak-polls N       back-to-back polls of the memory soak (default 6)
  --no-nginx           skip the nginx comparison
  --phases LIST        phases to run, e.g. 1,5 (default 1,2,3,4,5,6; see the source)
  --exporter-env K=V   extra environment of the exporter, for experiments (repeatable)";

/// Whether `cargo test` started the benchmark: `cargo bench` passes `--bench`, a
/// person passes options, and `cargo test --all-targets` passes nothing at all.
pub fn started_by_cargo_test() -> bool {
    std::env::args_os().len() == 1
}

pub struct Opts {
    /// Phases to run, 1 to 6.
    pub phases: Vec<u8>,
    /// Extra environment of the exporter (experiments such as MALLOC_ARENA_MAX).
    pub exporter_env: Vec<(String, String)>,
    pub customers: usize,
    pub soak_polls: usize,
    pub rate_limit: u32,
    pub sweep_customers: usize,
    pub scrapes: usize,
    pub nginx: bool,
}

pub fn parse_args() -> Opts {
    let mut customers = 10_000usize;
    let mut rate_limit = None;
    let mut sweep = None;
    let mut scrapes = 40usize;
    let mut soak_polls = 6usize;
    let mut nginx = true;
    let mut phases = vec![1, 2, 3, 4, 5, 6];
    let mut exporter_env = Vec::new();
    let mut args = std::env::args().skip(1);
    let number = |name: &str, v: Option<String>| -> usize {
        match v.as_deref().map(str::parse::<usize>) {
            Some(Ok(n)) if n > 0 => n,
            _ => {
                eprintln!("{name} needs a positive number\n{USAGE}");
                std::process::exit(2);
            }
        }
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // `cargo bench` passes --bench to harness = false targets.
            "--bench" => {}
            "--customers" => customers = number("--customers", args.next()),
            "--rate-limit" => rate_limit = Some(number("--rate-limit", args.next())),
            "--sweep-customers" => sweep = Some(number("--sweep-customers", args.next())),
            "--scrapes" => scrapes = number("--scrapes", args.next()),
            "--soak-polls" => soak_polls = number("--soak-polls", args.next()),
            "--no-nginx" => nginx = false,
            "--phases" => {
                phases = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|p| p.trim().parse().ok())
                    .collect();
            }
            "--exporter-env" => {
                let kv = args.next().unwrap_or_default();
                match kv.split_once('=') {
                    Some((k, v)) => exporter_env.push((k.to_owned(), v.to_owned())),
                    None => {
                        eprintln!("--exporter-env needs KEY=VALUE\n{USAGE}");
                        std::process::exit(2);
                    }
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => {
                eprintln!("unknown argument {other}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let rate_limit = rate_limit
        .unwrap_or(customers * 3)
        .clamp(60, UNLIMITED as usize) as u32;
    Opts {
        phases,
        exporter_env,
        customers,
        soak_polls,
        rate_limit,
        sweep_customers: sweep.unwrap_or(customers.min(2000)),
        scrapes,
        nginx,
    }
}
