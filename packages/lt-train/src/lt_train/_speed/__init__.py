"""Speed measures that change no result: the CPU's faster small-convolution gradients and
kept heap pages, and the batch copy one step ahead on a CUDA GPU."""
