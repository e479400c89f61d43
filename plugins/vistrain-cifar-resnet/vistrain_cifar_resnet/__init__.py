"""CIFAR ResNets, Lion and the ResNet step schedule for vistrain."""
