// The backbones the page offers, as people know them: a name with its size, and where to get
// weights for the ones the page does not bundle.

import type { BackboneName } from '../engine/protocol';

export interface BackboneInfo {
  name: BackboneName;
  label: string;
  /** Parameters without the ImageNet classifier's (which the new head replaces), for the label. */
  parameters: string;
  /** The page serves weights for it; the others need the user's file. */
  bundled: boolean;
  /** A line of Python that writes weights the engine takes, for the ones not bundled. */
  howToGet: string | null;
}

function torchvision(name: BackboneName, label: string, parameters: string, builder: string): BackboneInfo {
  return {
    name,
    label,
    parameters,
    bundled: false,
    howToGet: `import torch, torchvision; torch.save(torchvision.models.${builder}(weights="DEFAULT").state_dict(), "${name}.pth")`,
  };
}

export const BACKBONES: readonly BackboneInfo[] = [
  { name: 'efficientnet_lite0', label: 'EfficientNet-Lite0', parameters: '4.7 M', bundled: true, howToGet: null },
  torchvision('mobilenet_v2', 'MobileNetV2', '3.5 M', 'mobilenet_v2'),
  torchvision('resnet18', 'ResNet-18', '11.7 M', 'resnet18'),
  torchvision('resnet50', 'ResNet-50', '25.6 M', 'resnet50'),
];

export function backboneInfo(name: BackboneName): BackboneInfo {
  const info = BACKBONES.find((b) => b.name === name);
  if (!info) throw new Error(`unknown backbone ${name}`);
  return info;
}

export function isBackboneName(value: string): value is BackboneName {
  return BACKBONES.some((b) => b.name === value);
}

/** "ResNet-18 (torchvision)", "EfficientNet-Lite0 (default, bundled)": the select's words. */
export function optionLabel(info: BackboneInfo): string {
  const origin = info.bundled ? 'default, bundled' : 'torchvision';
  return `${info.label} (${origin}), ${info.parameters} parameters`;
}
