// kubecheck decodes every object of a Kubernetes YAML stream strictly against the Kubernetes API
// types (k8s.io/api): an unknown field, a duplicate field, a value of the wrong type, a kind that is
// not registered or an object without a name is an error. It reads the files named as arguments, or
// standard input; it prints one line per object and exits 1 when any object was refused, 2 when the
// stream held no object at all.
//
// phoneagent's tests run it on `helm template` output (tests/integration/test_deploy.py); it needs no
// cluster.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

func newDecoder() (runtime.Decoder, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme,
		appsv1.AddToScheme,
		batchv1.AddToScheme,
		autoscalingv1.AddToScheme,
		autoscalingv2.AddToScheme,
		policyv1.AddToScheme,
		networkingv1.AddToScheme,
		rbacv1.AddToScheme,
		storagev1.AddToScheme,
		admissionregistrationv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	// EnableStrict: unknown and duplicate fields are errors, not silently dropped
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer(), nil
}

// documents splits a YAML stream into its documents, leaving out those with no content.
func documents(r io.Reader) ([][]byte, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		var probe interface{}
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			return nil, err
		}
		if probe != nil {
			docs = append(docs, doc)
		}
	}
}

// check decodes one document; it returns a label for the object and the error, if any.
func check(decoder runtime.Decoder, doc []byte) (string, error) {
	// YAMLToJSONStrict: a key twice in one mapping is an error
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return "(unparsable document)", err
	}
	// a label for the messages, read loosely before the strict decoding
	var loose struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(js, &loose)
	label := fmt.Sprintf("%s/%s", loose.Kind, loose.Metadata.Name)
	obj, _, err := decoder.Decode(js, nil, nil)
	if err != nil {
		return label, err
	}
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return label, err
	}
	if accessor.GetName() == "" {
		return label, errors.New("metadata.name is empty")
	}
	return label, nil
}

func run(inputs []string, out io.Writer) int {
	decoder, err := newDecoder()
	if err != nil {
		fmt.Fprintln(out, "kubecheck:", err)
		return 1
	}
	var all [][]byte
	read := func(name string, r io.Reader) bool {
		docs, err := documents(r)
		if err != nil {
			fmt.Fprintf(out, "REFUSED %s: %v\n", name, err)
			return false
		}
		all = append(all, docs...)
		return true
	}
	ok := true
	if len(inputs) == 0 {
		ok = read("(stdin)", os.Stdin)
	}
	for _, name := range inputs {
		data, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintln(out, "kubecheck:", err)
			return 1
		}
		ok = read(name, bytes.NewReader(data)) && ok
	}
	seen := map[string]bool{}
	for _, doc := range all {
		label, err := check(decoder, doc)
		if err == nil && seen[label] {
			err = errors.New("a second object of this kind and name")
		}
		seen[label] = true
		if err != nil {
			ok = false
			fmt.Fprintf(out, "REFUSED %s: %v\n", label, err)
			continue
		}
		fmt.Fprintf(out, "ok %s\n", label)
	}
	if !ok {
		return 1
	}
	if len(all) == 0 {
		fmt.Fprintln(out, "kubecheck: no object in the input")
		return 2
	}
	return 0
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout))
}
