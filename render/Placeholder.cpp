// replaced by the render layer
