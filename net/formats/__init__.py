"""The borders of Gatework: readers and writers of other frameworks' files.

Caffe's files (prototxt nets and solvers, caffemodel weights, binaryproto means)
are read here without Caffe and without the `protobuf` package:

    prototree        the message tree both encodings produce, with source lines
    prototext        the protobuf text format: tokenizer, parser, writer
    caffe_schema     Caffe's messages and enums, transcribed from caffe.proto
    caffe_messages   typing a text tree against the schema; binary decode/encode; blobs
    caffe_upgrade    V1 `layers {}` nets, legacy inputs and solver types into the current form
    caffe_files      read_net_text, read_net_binary, write_caffemodel, read_blobproto, ...
    caffe_layers     the table of Caffe layer types as gates, read both ways
    caffe_net        a net prototxt as a NetSpec (read_prototxt)
    caffe_solver     a solver prototxt as a NetSpec with its solver section, and back
    caffe_weights    .caffemodel blobs as a Net's parameters and buffers
    caffe_export     a config and its weights as net prototxt, caffemodel, solver prototxt
    caffe_convert    a Caffe net (and caffemodel) as a YAML config (and .weights.npz)
    config_yaml      a config mapping as readable YAML
    onnx_writer      the builder ONNX exporters write with (nodes, constants, names)
    onnx_exporters   every gate type's ONNX form (EXPORTERS)
    onnx_export      export_onnx: the test-phase graph as a checked ONNX model
    onnx_mappers     every mapped ONNX operator's gates (MAPPERS)
    onnx_values      initializers checked against their data; constant nodes folded in a budget
    onnx_import      read_onnx, load_onnx: an ONNX model as a NetSpec; the .onnx readers

The protobuf wire codec and Caffe's Datum records live on the training floor
(net.train.sources.protowire, net.train.sources.caffe_records), where data sources read them.

Importing the package registers the readers: `.prototxt` for load_config, Net.from_file and
every script, `.caffemodel` for Net.load_weights (and so --weights). Nothing below this package
imports it: the engine never learns which file a net came from.
"""
from ..core.config import register_reader
from ..core.state import register_weights_reader

from .caffe_net import read_prototxt
from .caffe_weights import read_caffemodel
from .onnx_import import register as register_onnx

register_reader(".prototxt", read_prototxt)
register_weights_reader(".caffemodel", read_caffemodel)
register_onnx()        # .onnx configs and weights (onnx itself is imported only when used)
