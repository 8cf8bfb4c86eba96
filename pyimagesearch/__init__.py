"""Reproductions of GoogLeNet, Inception-ResNet-v2 and the CIFAR ResNets in MXNet / Gluon."""

from pyimagesearch.runtime import configure_threads

configure_threads()
