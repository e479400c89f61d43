"""Built-in models, registered through the same hook a third-party plugin uses.

Factories are lazy ``"module:function"`` strings so listing models never imports torch.
``factory(num_classes, in_chans, input_size, **kwargs) -> nn.Module``.
"""

from vistrain.hookspecs import hookimpl

MNIST_NORM = {"mean": (0.1307,), "std": (0.3081,)}
IMAGENET_NORM = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
VGG_DEPTHS = {11: "A", 13: "B", 16: "D", 19: "E"}


@hookimpl
def register_models(register):
    """Register LeNet-5, AlexNet, VGG, perceptron/MLP, k-NN and the ``timm:`` prefix."""
    register("lenet5", "vistrain.models.lenet:create_lenet5", family="lenet", in_chans=1, input_size=28,
             min_size=28, max_size=32, **MNIST_NORM,
             description="LeNet-5, course version (max pool, ReLU); 61,706 params")
    register("lenet5_classic", "vistrain.models.lenet:create_lenet5_classic", family="lenet", in_chans=1,
             input_size=28, min_size=28, max_size=32, **MNIST_NORM,
             description="LeNet-5 as in 1998 (avg pool, tanh)")
    # min_size 28 keeps MNIST/CIFAR at their native size; the factory then builds the small variant.
    register("alexnet", "vistrain.models.alexnet:create_alexnet", family="alexnet", in_chans=3, input_size=227,
             min_size=28, max_size=512, **IMAGENET_NORM,
             description="AlexNet with LRN (kwargs lrn, groups); paper layout at 227, small variant below 100 px")
    for depth, config in VGG_DEPTHS.items():
        for bn in (False, True):
            suffix = "_bn" if bn else ""
            register(f"vgg{depth}{suffix}", f"vistrain.models.vgg:create_vgg{depth}{suffix}", family="vgg",
                     in_chans=3, input_size=224, min_size=28, max_size=512, **IMAGENET_NORM,
                     description=f"VGG-{depth} (config {config}){' with BatchNorm' if bn else ''}; "
                                 f"small variant below 100 px")
    register("perceptron", "vistrain.models.mlp:create_perceptron", family="mlp", in_chans=1, input_size=28,
             min_size=8, max_size=64, **MNIST_NORM,
             description="one fully connected layer from every pixel to every class")
    register("mlp", "vistrain.models.mlp:create_mlp", family="mlp", in_chans=1, input_size=28,
             min_size=8, max_size=64, **MNIST_NORM,
             description="MLP, kwargs hidden=800,800 (default, Hinton's distillation student) and drop_rate")
    # No declared channels or size: k-NN compares the data as it comes.
    register("knn", "vistrain.models.knn:create_knn", family="knn",
             description="k-nearest neighbours on pixels or on a checkpoint's features (kwargs k, metric, features)")
    register("timm", "vistrain.models.timm_backbones:create_timm", family="timm", takes_arg=True, in_chans=3,
             input_size=224, min_size=32, max_size=1024, **IMAGENET_NORM,
             description="any timm model, e.g. timm:resnet18; --pretrained PATH (.safetensors/.pth) or hub")
