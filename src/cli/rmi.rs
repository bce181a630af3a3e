//! `hutch rmi IMAGE...`: remove images, and the layers nothing else uses.

use clap::Args;

use crate::image::{self, ImageError};

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Remove even when a container uses the image
    #[arg(short, long)]
    pub force: bool,

    /// Images by name, digest or id
    #[arg(required = true)]
    pub images: Vec<String>,
}

pub fn rmi(args: RmiArgs) -> anyhow::Result<i32> {
    let force = args.force;
    let names = args.images.clone();
    let removed: Vec<String> = image::in_helper(move |store| {
        let lock = store.lock().map_err(|e| e.to_string())?;
        let mut index = store.index().map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for name in &names {
            let rec = index
                .find(name)
                .cloned()
                .ok_or_else(|| ImageError::NotFound(name.clone()).to_string())?;
            let users = image::containers_using(store, &rec);
            if !force && !users.is_empty() {
                return Err(ImageError::InUse {
                    name: name.clone(),
                    container: users.join(", "),
                }
                .to_string());
            }
            // A name given of an image with several names untags only it,
            // as Docker does; an id removes the image.
            let by_name = rec.names.len() > 1
                && crate::image::reference::Reference::parse(name)
                    .ok()
                    .is_some_and(|r| rec.names.contains(&r.to_string()));
            if by_name {
                let full = crate::image::reference::Reference::parse(name)
                    .map(|r| r.to_string())
                    .unwrap_or_default();
                for i in &mut index.images {
                    i.names.retain(|n| n != &full);
                }
                out.push(format!("Untagged: {full}"));
            } else {
                index.images.retain(|i| i.id != rec.id);
                for n in &rec.names {
                    out.push(format!("Untagged: {n}"));
                }
                out.push(format!("Deleted: {}", rec.id));
            }
        }
        store
            .write_index(&index, &lock)
            .map_err(|e| e.to_string())?;
        store.sweep(&index, &lock).map_err(|e| e.to_string())?;
        Ok(out)
    })?;
    for l in removed {
        println!("{l}");
    }
    Ok(0)
}
