//! `hutch image prune`: remove images without a name that no container
//! uses (all unused images with -a), then every layer and blob nothing
//! references and the work dirs of dead pulls.

use clap::{Args, Subcommand};

use crate::image;

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Remove unused images and layers
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove every image no container uses, not only unnamed ones
    #[arg(short, long)]
    pub all: bool,
}

pub fn image(args: ImageArgs) -> anyhow::Result<i32> {
    match args.command {
        ImageCommand::Prune(p) => prune(p),
    }
}

fn prune(args: PruneArgs) -> anyhow::Result<i32> {
    let all = args.all;
    let (images, layers): (Vec<String>, usize) = image::in_helper(move |store| {
        let lock = store.lock().map_err(|e| e.to_string())?;
        let mut index = store.index().map_err(|e| e.to_string())?;
        let mut gone = Vec::new();
        index.images.retain(|i| {
            let unused = image::containers_using(store, i).is_empty();
            let remove = unused && (all || i.names.is_empty());
            if remove {
                gone.push(i.id.to_string());
            }
            !remove
        });
        store
            .write_index(&index, &lock)
            .map_err(|e| e.to_string())?;
        let layers = store.sweep(&index, &lock).map_err(|e| e.to_string())?;
        Ok((gone, layers))
    })?;
    for i in &images {
        println!("Deleted: {i}");
    }
    println!("Removed {} images and {layers} layers", images.len());
    Ok(0)
}
