"""Data sources: the readers behind a config's `data:` section (net.train.data uses them).

    base           Source (what batches are drawn from) and Dataset (in memory)
    tables         .npz and .csv files, sizes and header rule checked
    builtin        scikit-learn's digits, iris and diabetes
    idx            IDX files: MNIST and Debian's Fashion-MNIST
    database       LMDB of Datum records (Caffe's Data layer), convert_imageset, image means
    images         Caffe's ImageData (a list file of images) and image decoding (Pillow)
    hdf5           Caffe's HDF5Data (a list file of .h5 files)
    dummy          Caffe's DummyData
    transform      Caffe's DataTransformer: crop, mirror, mean, scale
    prefetch       loading ahead in a background thread
    caffe_records  Caffe's Datum and BlobProto on the wire codec
    protowire      the protobuf wire format (net.formats builds Caffe's other messages on it)
"""
