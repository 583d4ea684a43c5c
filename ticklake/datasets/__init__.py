"""One module per dataset: what a refresh asks the source, and how the answer becomes the stored rows."""
