"""Hook implementations; factories are lazy strings, so importing this module imports no torch."""

from __future__ import annotations

from vistrain.hookspecs import hookimpl

DEPTHS = (20, 32, 44, 56, 110)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@hookimpl
def register_models(register):
    """ResNet-20/32/44/56/110 for 32x32 images."""
    for depth in DEPTHS:
        register(f"resnet{depth}", f"vistrain_cifar_resnet.models:resnet{depth}", family="cifar-resnet",
                 in_chans=3, input_size=32, min_size=8, max_size=512, mean=CIFAR_MEAN, std=CIFAR_STD,
                 description=f"CIFAR ResNet-{depth} (He et al. 2016, 3 stages of {(depth - 2) // 6} basic blocks, "
                             f"parameter-free shortcuts)")


@hookimpl
def register_optimizers(register):
    """Lion."""
    register("lion", "vistrain_cifar_resnet.lion:make_lion",
             description="Lion (Chen et al. 2023): sign of interpolated momentum; use ~1/10 of AdamW's lr")


@hookimpl
def register_schedulers(register):
    """The CIFAR ResNet schedule."""
    register("resnet-steps", "vistrain_cifar_resnet.schedule:make_resnet_steps",
             description="multiply the lr by gamma at 50% and 75% of training (He et al. 2016, CIFAR)")
