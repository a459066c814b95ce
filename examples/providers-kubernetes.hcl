# Routes from Kubernetes (docs/providers.md, "kubernetes"): Ingresses of the class
# a3s-gateway and Traefik's IngressRoute / Middleware CRDs, with the pods' addresses (from
# EndpointSlices) as backends. Install deploy/kubernetes/ (RBAC, IngressClass, CRDs) first; in a
# pod the service account is used, elsewhere ~/.kube/config.
#
#   kubectl apply -f deploy/kubernetes/
#   a3s-gateway run --config examples/providers-kubernetes.hcl

entrypoints "web" {
  address = "0.0.0.0:8080"
}

providers {
  kubernetes {
    namespaces        = ["default"]
    ingress_class     = "a3s-gateway"
    ingress_route_crd = true
    entrypoints       = ["web"]
  }
}
