"""Container images for the oci driver: names, a content-addressed store with unpacked
layers shared through overlayfs, archive import and registry pulls."""
