//! `hutch load -i FILE`: images from an OCI archive or a `docker save` tar.

use std::path::PathBuf;

use clap::Args;

use crate::image;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The archive to read
    #[arg(short, long, value_name = "FILE")]
    pub input: PathBuf,

    /// No progress output
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn load(args: LoadArgs) -> anyhow::Result<i32> {
    let path = std::path::absolute(&args.input)?;
    let quiet = args.quiet;
    let recs = image::in_helper(move |store| {
        image::load::load(store, &path, quiet).map_err(|e| e.to_string())
    })?;
    for r in recs {
        if r.names.is_empty() {
            println!("Loaded image: {}", r.id);
        }
        for n in &r.names {
            println!("Loaded image: {n}");
        }
    }
    Ok(0)
}
