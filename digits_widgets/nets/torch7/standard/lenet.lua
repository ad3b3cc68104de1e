-- LeNet, DIGITS' standard Torch network (digits/standard-networks/torch/lenet.lua, NVIDIA DIGITS,
-- BSD-3-Clause): the same layers, sizes, backend choice and returned table, for 28x28 images.
return function(params)
    -- nclasses is given for classification datasets only
    local nclasses = params.nclasses or 1
    -- channels from the dataset; params.inputShape is {channels, height, width}, 1-based
    local channels = 1
    if params.inputShape then
        channels = params.inputShape[1]
        assert(params.inputShape[2]==28 and params.inputShape[3]==28, 'Network expects 28x28 images')
    end

    if pcall(function() require('cudnn') end) then
        print('Using CuDNN backend')
        backend = cudnn
        convLayer = cudnn.SpatialConvolution
        convLayerName = 'cudnn.SpatialConvolution'
    else
        print('Failed to load cudnn backend (is libcudnn.so in your library path?)')
        backend = nn
        convLayer = nn.SpatialConvolutionMM
        convLayerName = 'nn.SpatialConvolutionMM'
    end

    local lenet = nn.Sequential()
    lenet:add(nn.MulConstant(0.0125))                                  -- 1/(standard deviation of MNIST)
    lenet:add(backend.SpatialConvolution(channels, 20, 5, 5, 1, 1, 0)) -- channels x 28 x 28 -> 20 x 24 x 24
    lenet:add(backend.SpatialMaxPooling(2, 2, 2, 2))                   -- -> 20 x 12 x 12
    lenet:add(backend.SpatialConvolution(20, 50, 5, 5, 1, 1, 0))       -- -> 50 x 8 x 8
    lenet:add(backend.SpatialMaxPooling(2, 2, 2, 2))                   -- -> 50 x 4 x 4
    lenet:add(nn.View(-1):setNumInputDims(3))                          -- -> 800
    lenet:add(nn.Linear(800, 500))
    lenet:add(backend.ReLU())
    lenet:add(nn.Linear(500, nclasses))
    lenet:add(nn.LogSoftMax())

    return {
        model = lenet,
        loss = nn.ClassNLLCriterion(),
        trainBatchSize = 64,
        validationBatchSize = 32,
    }
end
