"""Built-in models, registered through the same hook a third-party plugin uses.

Factories are lazy ``"module:function"`` strings so listing models never imports torch.
``factory(num_classes, in_chans, input_size, **kwargs) -> nn.Module``.
"""

from vistrain.hookspecs import hookimpl

MNIST_NORM = {"mean": (0.1307,), "std": (0.3081,)}


@hookimpl
def register_models(register):
    """Register LeNet-5 and its classic variant."""
    register("lenet5", "vistrain.models.lenet:create_lenet5", family="lenet", in_chans=1, input_size=28,
             min_size=28, max_size=32, **MNIST_NORM,
             description="LeNet-5, course version (max pool, ReLU); 61,706 params")
    register("lenet5_classic", "vistrain.models.lenet:create_lenet5_classic", family="lenet", in_chans=1,
             input_size=28, min_size=28, max_size=32, **MNIST_NORM,
             description="LeNet-5 as in 1998 (avg pool, tanh)")
