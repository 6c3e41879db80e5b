//! Istio traffic configuration (VirtualService, DestinationRule, ServiceEntry) loaded and validated.
