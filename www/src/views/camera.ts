// The webcam, shared by "capture into a class" and "webcam live": start and stop a stream in a
// <video>, and take its current frame as a JPEG file (the engine decodes it like any picture).

import { messageOf } from '../app/context';

export class Camera {
  private stream: MediaStream | null = null;

  constructor(private readonly video: HTMLVideoElement) {
    video.muted = true;
    video.playsInline = true;
  }

  get running(): boolean {
    return this.stream !== null;
  }

  /** Asks for the camera; throws with a readable message when it is refused or missing. */
  async start(): Promise<void> {
    if (this.stream) return;
    if (!navigator.mediaDevices?.getUserMedia) throw new Error('this browser gives the page no camera (it needs https or localhost)');
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    } catch (error) {
      const name = error instanceof DOMException ? error.name : '';
      throw new Error(
        name === 'NotAllowedError'
          ? 'the camera was not allowed (allow it in the address bar and try again)'
          : name === 'NotFoundError'
            ? 'no camera was found'
            : `the camera could not start: ${messageOf(error)}`,
      );
    }
    this.video.srcObject = this.stream;
    this.video.hidden = false;
    await this.video.play();
  }

  stop(): void {
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = null;
    this.video.srcObject = null;
    this.video.hidden = true;
  }

  /** The frame shown now, as a JPEG `File` named `name`; null before the first frame. */
  async frame(name: string): Promise<File | null> {
    const { videoWidth: width, videoHeight: height } = this.video;
    if (!this.stream || width === 0 || height === 0) return null;
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext('2d');
    if (!context) return null;
    context.drawImage(this.video, 0, 0, width, height);
    const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.9));
    return blob && new File([blob], name, { type: 'image/jpeg' });
  }
}
