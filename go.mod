module github.com/siglipd/siglipd

go 1.26.8

require (
	github.com/eclipse/paho.mqtt.golang v1.5.1
	github.com/rivo/uniseg v0.4.7
	github.com/spf13/pflag v1.1.0
	github.com/yalue/onnxruntime_go v1.27.0
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/text v0.44.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/gorilla/websocket v1.5.3 // indirect
	gocv.io/x/gocv v0.31.0
	golang.org/x/net v0.44.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
)
