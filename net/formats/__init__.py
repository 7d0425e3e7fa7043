"""The borders of Gatework: readers and writers of other frameworks' files.

Caffe's files (prototxt nets and solvers, caffemodel weights, binaryproto means, Datum records)
are read here without Caffe and without the `protobuf` package:

    protowire        the protobuf binary wire format (varints, fixed, length-delimited, packed)
    prototree        the message tree both encodings produce, with source lines
    prototext        the protobuf text format: tokenizer, parser, writer
    caffe_schema     Caffe's messages and enums, transcribed from caffe.proto
    caffe_messages   typing a text tree against the schema; binary decode/encode; blobs, Datum
    caffe_upgrade    V1 `layers {}` nets, legacy inputs and solver types into the current form
    caffe_files      read_net_text, read_net_binary, write_caffemodel, read_blobproto, ...

Nothing below this package imports it: the engine never learns which file a net came from.
"""
