module github.com/siglipd/siglipd

go 1.26.8

require (
	github.com/spf13/pflag v1.1.0
	github.com/yalue/onnxruntime_go v1.27.0
	go.yaml.in/yaml/v3 v3.0.6
)

require gocv.io/x/gocv v0.31.0
