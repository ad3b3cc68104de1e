"""The subset of Caffe's ``caffe.proto`` (NetParameter and the layer parameters we read), built at runtime.

Field numbers, types and defaults are Caffe's, so prototxt written for Caffe / NVcaffe parses unchanged, and
``.caffemodel`` files (binary NetParameter) read and write as Caffe's do. ``CaffeModel`` is NetParameter plus its
deprecated V1 ``layers`` field, for reading old caffemodels only: the text schema leaves ``layers`` out, so a V1
prototxt is refused at parse time naming the field.
"""
from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_T = {'int32': _F.TYPE_INT32, 'int64': _F.TYPE_INT64, 'uint32': _F.TYPE_UINT32, 'float': _F.TYPE_FLOAT,
      'double': _F.TYPE_DOUBLE, 'bool': _F.TYPE_BOOL, 'string': _F.TYPE_STRING}
_PKG = 'caffe'

# message name -> [(field, number, type, 'repeated'|'optional', default)]; a type that is not scalar names a
# message or enum (enums are listed in _ENUMS).
_ENUMS = {
    'Phase': [('TRAIN', 0), ('TEST', 1)],
    'PoolingParameter.PoolMethod': [('MAX', 0), ('AVE', 1), ('STOCHASTIC', 2)],
    'EltwiseParameter.EltwiseOp': [('PROD', 0), ('SUM', 1), ('MAX', 2)],
    'LRNParameter.NormRegion': [('ACROSS_CHANNELS', 0), ('WITHIN_CHANNEL', 1)],
    'FillerParameter.VarianceNorm': [('FAN_IN', 0), ('FAN_OUT', 1), ('AVERAGE', 2)],
    'LossParameter.NormalizationMode': [('FULL', 0), ('VALID', 1), ('BATCH_SIZE', 2), ('NONE', 3)],
    'DataParameter.DB': [('LEVELDB', 0), ('LMDB', 1)],
    'V1LayerParameter.LayerType': [
        ('NONE', 0), ('ABSVAL', 35), ('ACCURACY', 1), ('ARGMAX', 30), ('BNLL', 2), ('CONCAT', 3),
        ('CONTRASTIVE_LOSS', 37), ('CONVOLUTION', 4), ('DATA', 5), ('DECONVOLUTION', 39), ('DROPOUT', 6),
        ('DUMMY_DATA', 32), ('EUCLIDEAN_LOSS', 7), ('ELTWISE', 25), ('EXP', 38), ('FLATTEN', 8), ('HDF5_DATA', 9),
        ('HDF5_OUTPUT', 10), ('HINGE_LOSS', 28), ('IM2COL', 11), ('IMAGE_DATA', 12), ('INFOGAIN_LOSS', 13),
        ('INNER_PRODUCT', 14), ('LRN', 15), ('MEMORY_DATA', 29), ('MULTINOMIAL_LOGISTIC_LOSS', 16), ('MVN', 34),
        ('POOLING', 17), ('POWER', 26), ('RELU', 18), ('SIGMOID', 19), ('SIGMOID_CROSS_ENTROPY_LOSS', 27),
        ('SILENCE', 36), ('SOFTMAX', 20), ('SOFTMAX_LOSS', 21), ('SPLIT', 22), ('SLICE', 33), ('TANH', 23),
        ('WINDOW_DATA', 24), ('THRESHOLD', 31)],
}
# repeated numeric fields that Caffe declares [packed = true] (how caffemodels are written)
_PACKED = {('BlobShape', 'dim'), ('BlobProto', 'data'), ('BlobProto', 'diff'), ('BlobProto', 'double_data'),
           ('BlobProto', 'double_diff')}
O, R = 'optional', 'repeated'
_MESSAGES = {
    'BlobShape': [('dim', 1, 'int64', R, None)],
    'BlobProto': [('shape', 7, 'BlobShape', O, None), ('data', 5, 'float', R, None),
                  ('diff', 6, 'float', R, None), ('double_data', 8, 'double', R, None),
                  ('double_diff', 9, 'double', R, None), ('num', 1, 'int32', O, 0), ('channels', 2, 'int32', O, 0),
                  ('height', 3, 'int32', O, 0), ('width', 4, 'int32', O, 0)],
    'FillerParameter': [('type', 1, 'string', O, 'constant'), ('value', 2, 'float', O, 0),
                        ('min', 3, 'float', O, 0), ('max', 4, 'float', O, 1), ('mean', 5, 'float', O, 0),
                        ('std', 6, 'float', O, 1), ('sparse', 7, 'int32', O, -1),
                        ('variance_norm', 8, 'FillerParameter.VarianceNorm', O, 'FAN_IN')],
    'NetStateRule': [('phase', 1, 'Phase', O, None), ('min_level', 2, 'int32', O, None),
                     ('max_level', 3, 'int32', O, None), ('stage', 4, 'string', R, None),
                     ('not_stage', 5, 'string', R, None)],
    'ParamSpec': [('name', 1, 'string', O, None), ('lr_mult', 3, 'float', O, 1),
                  ('decay_mult', 4, 'float', O, 1)],
    'ConvolutionParameter': [
        ('num_output', 1, 'uint32', O, None), ('bias_term', 2, 'bool', O, True), ('pad', 3, 'uint32', R, None),
        ('kernel_size', 4, 'uint32', R, None), ('group', 5, 'uint32', O, 1), ('stride', 6, 'uint32', R, None),
        ('weight_filler', 7, 'FillerParameter', O, None), ('bias_filler', 8, 'FillerParameter', O, None),
        ('pad_h', 9, 'uint32', O, 0), ('pad_w', 10, 'uint32', O, 0), ('kernel_h', 11, 'uint32', O, None),
        ('kernel_w', 12, 'uint32', O, None), ('stride_h', 13, 'uint32', O, None),
        ('stride_w', 14, 'uint32', O, None), ('axis', 16, 'int32', O, 1), ('dilation', 18, 'uint32', R, None)],
    'PoolingParameter': [
        ('pool', 1, 'PoolingParameter.PoolMethod', O, 'MAX'), ('kernel_size', 2, 'uint32', O, None),
        ('stride', 3, 'uint32', O, 1), ('pad', 4, 'uint32', O, 0), ('kernel_h', 5, 'uint32', O, None),
        ('kernel_w', 6, 'uint32', O, None), ('stride_h', 7, 'uint32', O, None),
        ('stride_w', 8, 'uint32', O, None), ('pad_h', 9, 'uint32', O, 0), ('pad_w', 10, 'uint32', O, 0),
        ('global_pooling', 12, 'bool', O, False)],
    'InnerProductParameter': [
        ('num_output', 1, 'uint32', O, None), ('bias_term', 2, 'bool', O, True),
        ('weight_filler', 3, 'FillerParameter', O, None), ('bias_filler', 4, 'FillerParameter', O, None),
        ('axis', 5, 'int32', O, 1), ('transpose', 6, 'bool', O, False)],
    'ReLUParameter': [('negative_slope', 1, 'float', O, 0)],
    'PowerParameter': [('power', 1, 'float', O, 1), ('scale', 2, 'float', O, 1), ('shift', 3, 'float', O, 0)],
    'DropoutParameter': [('dropout_ratio', 1, 'float', O, 0.5)],
    'LRNParameter': [('local_size', 1, 'uint32', O, 5), ('alpha', 2, 'float', O, 1),
                     ('beta', 3, 'float', O, 0.75),
                     ('norm_region', 4, 'LRNParameter.NormRegion', O, 'ACROSS_CHANNELS'),
                     ('k', 5, 'float', O, 1)],
    'ConcatParameter': [('concat_dim', 1, 'uint32', O, 1), ('axis', 2, 'int32', O, 1)],
    'EltwiseParameter': [('operation', 1, 'EltwiseParameter.EltwiseOp', O, 'SUM'), ('coeff', 2, 'float', R, None),
                         ('stable_prod_grad', 3, 'bool', O, True)],
    'SoftmaxParameter': [('axis', 2, 'int32', O, 1)],
    'AccuracyParameter': [('top_k', 1, 'uint32', O, 1), ('axis', 2, 'int32', O, 1),
                          ('ignore_label', 3, 'int32', O, None)],
    'DataParameter': [('source', 1, 'string', O, None), ('batch_size', 4, 'uint32', O, None),
                      ('rand_skip', 7, 'uint32', O, 0), ('backend', 8, 'DataParameter.DB', O, 'LEVELDB'),
                      ('prefetch', 10, 'uint32', O, 4)],
    'TransformationParameter': [('scale', 1, 'float', O, 1), ('mirror', 2, 'bool', O, False),
                                ('crop_size', 3, 'uint32', O, 0), ('mean_file', 4, 'string', O, None),
                                ('mean_value', 5, 'float', R, None)],
    'PReLUParameter': [('filler', 1, 'FillerParameter', O, None), ('channel_shared', 2, 'bool', O, False)],
    'LossParameter': [('ignore_label', 1, 'int32', O, None), ('normalize', 2, 'bool', O, None),
                      ('normalization', 3, 'LossParameter.NormalizationMode', O, 'VALID')],
    'FlattenParameter': [('axis', 1, 'int32', O, 1), ('end_axis', 2, 'int32', O, -1)],
    'ReshapeParameter': [('shape', 1, 'BlobShape', O, None), ('axis', 2, 'int32', O, 0),
                         ('num_axes', 3, 'int32', O, -1)],
    'SliceParameter': [('slice_dim', 1, 'uint32', O, 1), ('slice_point', 2, 'uint32', R, None),
                       ('axis', 3, 'int32', O, 1)],
    'ScaleParameter': [('axis', 1, 'int32', O, 1), ('num_axes', 2, 'int32', O, 1),
                       ('filler', 3, 'FillerParameter', O, None), ('bias_term', 4, 'bool', O, False),
                       ('bias_filler', 5, 'FillerParameter', O, None)],
    'BiasParameter': [('axis', 1, 'int32', O, 1), ('num_axes', 2, 'int32', O, 1),
                      ('filler', 3, 'FillerParameter', O, None)],
    'BatchNormParameter': [('use_global_stats', 1, 'bool', O, None),
                           ('moving_average_fraction', 2, 'float', O, 0.999), ('eps', 3, 'float', O, 1e-5)],
    'CropParameter': [('axis', 1, 'int32', O, 2), ('offset', 2, 'uint32', R, None)],
    'ContrastiveLossParameter': [('margin', 1, 'float', O, 1), ('legacy_version', 2, 'bool', O, False)],
    'PythonParameter': [('module', 1, 'string', O, None), ('layer', 2, 'string', O, None),
                        ('param_str', 3, 'string', O, ''), ('share_in_parallel', 4, 'bool', O, False)],
    'LayerParameter': [
        ('name', 1, 'string', O, None), ('type', 2, 'string', O, None), ('bottom', 3, 'string', R, None),
        ('top', 4, 'string', R, None), ('phase', 10, 'Phase', O, None), ('loss_weight', 5, 'float', R, None),
        ('param', 6, 'ParamSpec', R, None), ('blobs', 7, 'BlobProto', R, None),
        ('propagate_down', 11, 'bool', R, None),
        ('include', 8, 'NetStateRule', R, None), ('exclude', 9, 'NetStateRule', R, None),
        ('transform_param', 100, 'TransformationParameter', O, None),
        ('loss_param', 101, 'LossParameter', O, None), ('accuracy_param', 102, 'AccuracyParameter', O, None),
        ('contrastive_loss_param', 105, 'ContrastiveLossParameter', O, None),
        ('concat_param', 104, 'ConcatParameter', O, None),
        ('convolution_param', 106, 'ConvolutionParameter', O, None),
        ('data_param', 107, 'DataParameter', O, None), ('dropout_param', 108, 'DropoutParameter', O, None),
        ('eltwise_param', 110, 'EltwiseParameter', O, None),
        ('inner_product_param', 117, 'InnerProductParameter', O, None),
        ('lrn_param', 118, 'LRNParameter', O, None), ('pooling_param', 121, 'PoolingParameter', O, None),
        ('power_param', 122, 'PowerParameter', O, None), ('relu_param', 123, 'ReLUParameter', O, None),
        ('softmax_param', 125, 'SoftmaxParameter', O, None), ('slice_param', 126, 'SliceParameter', O, None),
        ('python_param', 130, 'PythonParameter', O, None), ('prelu_param', 131, 'PReLUParameter', O, None),
        ('reshape_param', 133, 'ReshapeParameter', O, None), ('flatten_param', 135, 'FlattenParameter', O, None),
        ('batch_norm_param', 139, 'BatchNormParameter', O, None), ('bias_param', 141, 'BiasParameter', O, None),
        ('scale_param', 142, 'ScaleParameter', O, None), ('crop_param', 144, 'CropParameter', O, None)],
    'NetParameter': [('name', 1, 'string', O, None), ('input', 3, 'string', R, None),
                     ('input_shape', 8, 'BlobShape', R, None), ('input_dim', 4, 'int32', R, None),
                     ('force_backward', 5, 'bool', O, False), ('layer', 100, 'LayerParameter', R, None)],
    # Old caffemodels: V1 layers (2014-2015) and the V0 layer some of them wrap; weights and names only.
    'V0LayerParameter': [('name', 1, 'string', O, None), ('type', 2, 'string', O, None),
                         ('blobs', 50, 'BlobProto', R, None)],
    'V1LayerParameter': [('bottom', 2, 'string', R, None), ('top', 3, 'string', R, None),
                         ('name', 4, 'string', O, None), ('type', 5, 'V1LayerParameter.LayerType', O, None),
                         ('blobs', 6, 'BlobProto', R, None), ('layer', 1, 'V0LayerParameter', O, None)],
    'CaffeModel': [('name', 1, 'string', O, None), ('layer', 100, 'LayerParameter', R, None),
                   ('layers', 2, 'V1LayerParameter', R, None)],
}


def _default_text(value: object) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def _build() -> dict[str, type]:
    fdp = descriptor_pb2.FileDescriptorProto(name='digits_caffe_subset.proto', package=_PKG, syntax='proto2')
    nested_enums: dict[str, list] = {}
    for full, values in _ENUMS.items():
        if '.' in full:
            outer, inner = full.split('.')
            nested_enums.setdefault(outer, []).append((inner, values))
        else:
            enum = fdp.enum_type.add(name=full)
            for vname, number in values:
                enum.value.add(name=vname, number=number)
    for mname, fields in _MESSAGES.items():
        msg = fdp.message_type.add(name=mname)
        for ename, values in nested_enums.get(mname, []):
            enum = msg.enum_type.add(name=ename)
            for vname, number in values:
                enum.value.add(name=vname, number=number)
        for fname, number, ftype, label, default in fields:
            field = msg.field.add(name=fname, number=number,
                                  label=_F.LABEL_REPEATED if label == R else _F.LABEL_OPTIONAL)
            if ftype in _T:
                field.type = _T[ftype]
            elif ftype in _ENUMS:
                field.type = _F.TYPE_ENUM
                field.type_name = f'.{_PKG}.{ftype}'
            else:
                field.type = _F.TYPE_MESSAGE
                field.type_name = f'.{_PKG}.{ftype}'
            if (mname, fname) in _PACKED:
                field.options.packed = True
            if default is not None and label != R:
                field.default_value = _default_text(default)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f'{_PKG}.{name}'))
            for name in _MESSAGES}


MESSAGES = _build()
NetParameter = MESSAGES['NetParameter']
LayerParameter = MESSAGES['LayerParameter']
CaffeModel = MESSAGES['CaffeModel']
TRAIN, TEST = 0, 1
