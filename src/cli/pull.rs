//! `hutch pull IMAGE`: fetch an image from its registry into the store.

use clap::Args;

use crate::image::auth::Credentials;
use crate::image::manifest::Platform;
use crate::image::pull::PullOptions;
use crate::image::reference::Reference;

/// Registry flags shared by `pull` and `run`.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Pull for this platform instead of this machine's: OS/ARCH[/VARIANT]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,

    /// Require HTTPS with a verified certificate (false allows plain HTTP and unverified TLS)
    #[arg(long = "tls-verify", value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,

    /// Credentials for the registry, instead of those stored by `hutch login`
    #[arg(long, value_name = "USER:PASSWORD")]
    pub creds: Option<String>,
}

impl RegistryArgs {
    pub fn options(&self, quiet: bool) -> anyhow::Result<PullOptions> {
        let platform = match &self.platform {
            Some(p) => Some(Platform::parse(p)?),
            None => None,
        };
        let creds = match &self.creds {
            Some(c) => {
                let (u, p) = c
                    .split_once(':')
                    .ok_or_else(|| anyhow::anyhow!("--creds wants USER:PASSWORD"))?;
                Some(Credentials {
                    username: u.to_string(),
                    password: p.to_string(),
                })
            }
            None => None,
        };
        Ok(PullOptions {
            platform,
            tls_verify: self.tls_verify,
            quiet,
            creds,
        })
    }
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image: NAME[:TAG][@DIGEST]
    pub image: String,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Print nothing but the image id
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn pull(args: PullArgs) -> anyhow::Result<i32> {
    let r = Reference::parse(&args.image)?;
    let opts = args.registry.options(args.quiet)?;
    let rec = crate::image::pull(&r, &opts)?;
    println!("{}", rec.id);
    Ok(0)
}
