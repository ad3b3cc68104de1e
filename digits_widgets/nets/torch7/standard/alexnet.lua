-- AlexNet (Krizhevsky et al., 2012), DIGITS' standard Torch network
-- (digits/standard-networks/torch/ImageNet-Training/alexnet.lua, NVIDIA DIGITS, BSD-3-Clause): the same
-- layers, sizes and returned table, for 256x256 images cropped to 224x224.
if pcall(function() require('cudnn') end) then
    print('Using CuDNN backend')
    backend = cudnn
    convLayer = cudnn.SpatialConvolution
    convLayerName = 'cudnn.SpatialConvolution'
    cudnn.fastest = true
else
    print('Failed to load cudnn backend (is libcudnn.so in your library path?)')
    backend = nn
    convLayer = nn.SpatialConvolutionMM
    convLayerName = 'nn.SpatialConvolutionMM'
end

function createModel(nGPU, channels, nClasses)
    local features = nn.Sequential()
    features:add(convLayer(channels, 96, 11, 11, 4, 4, 2, 2))   -- 224 -> 55
    features:add(backend.ReLU(true))
    features:add(backend.SpatialMaxPooling(3, 3, 2, 2))         -- 55 -> 27
    features:add(convLayer(96, 256, 5, 5, 1, 1, 2, 2))          -- 27 -> 27
    features:add(backend.ReLU(true))
    features:add(backend.SpatialMaxPooling(3, 3, 2, 2))         -- 27 -> 13
    features:add(convLayer(256, 384, 3, 3, 1, 1, 1, 1))         -- 13 -> 13
    features:add(backend.ReLU(true))
    features:add(convLayer(384, 384, 3, 3, 1, 1, 1, 1))         -- 13 -> 13
    features:add(backend.ReLU(true))
    features:add(convLayer(384, 256, 3, 3, 1, 1, 1, 1))         -- 13 -> 13
    features:add(backend.ReLU(true))
    features:add(backend.SpatialMaxPooling(3, 3, 2, 2))         -- 13 -> 6

    local classifier = nn.Sequential()
    classifier:add(nn.View(256*6*6))
    classifier:add(nn.Dropout(0.5))
    classifier:add(nn.Linear(256*6*6, 4096))
    classifier:add(nn.Threshold(0, 1e-6))
    classifier:add(nn.Dropout(0.5))
    classifier:add(nn.Linear(4096, 4096))
    classifier:add(nn.Threshold(0, 1e-6))
    classifier:add(nn.Linear(4096, nClasses))
    classifier:add(backend.LogSoftMax())

    local model
    if nGPU > 1 then
        -- DIGITS spread the features over the GPUs; here DataParallelTable holds them and the trainer
        -- (DistributedDataParallel) uses the GPUs
        local gpus = torch.range(1, nGPU):totable()
        local parallel_features = nn.DataParallelTable(1, true, true):add(features, gpus)
        model = nn.Sequential():add(parallel_features):add(classifier)
    else
        model = nn.Sequential():add(features):add(classifier)
    end
    return model
end

return function(params)
    local nclasses = params.nclasses or 1
    local channels = 1
    if params.inputShape then
        channels = params.inputShape[1]
        assert(params.inputShape[2]==256 and params.inputShape[3]==256, 'Network expects 256x256 images')
    end
    return {
        model = createModel(params.ngpus, channels, nclasses),
        disableAutoDataParallelism = true,
        croplen = 224,
        trainBatchSize = 128,
        validationBatchSize = 32,
    }
end
