"""PyTorch targets: the IR becomes a torch.fx GraphModule op by op, saved as TorchScript."""
