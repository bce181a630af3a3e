//! OCI images: references, the registry client, the content-addressed store
//! and safe layer unpacking.
