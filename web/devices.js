// Cameras and microphones: open them (a chosen device, the call's size), list them in
// pickers, and the microphone level meter of the pre-join screen.

// 720p30 to publish three simulcast layers; `small` (?quality=low): one 640×360 layer.
function videoConstraints(small, deviceId) {
  const size = small ? { width: 640, height: 360, frameRate: 15 } : { width: 1280, height: 720, frameRate: 30 };
  return deviceId ? { ...size, deviceId: { exact: deviceId } } : size;
}

/** A camera and microphone stream from the chosen devices (the defaults if none). */
export function openMedia({ videoId, audioId, small }) {
  return navigator.mediaDevices.getUserMedia({
    audio: audioId ? { deviceId: { exact: audioId } } : true,
    video: videoConstraints(small, videoId),
  });
}

/** One new track from device `deviceId`: a device switch during the call. */
export async function openTrack(kind, deviceId, small) {
  const stream = await navigator.mediaDevices.getUserMedia(kind === 'audio'
    ? { audio: { deviceId: { exact: deviceId } } }
    : { video: videoConstraints(small, deviceId) });
  return kind === 'audio' ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
}

/** The device a track comes from. */
export function deviceOf(track) {
  return track?.getSettings().deviceId || '';
}

/**
 * Fill a camera and a microphone picker with the devices there are (labels are known
 * once the page has a stream), the ones `stream` uses selected.
 */
export async function fillPickers(cameraSelect, micSelect, stream) {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select, kind, track) => {
    const current = deviceOf(track);
    const options = devices.filter((d) => d.kind === kind).map((d, i) => {
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label || `${kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`;
      o.selected = d.deviceId === current;
      return o;
    });
    select.replaceChildren(...options);
  };
  fill(cameraSelect, 'videoinput', stream.getVideoTracks()[0]);
  fill(micSelect, 'audioinput', stream.getAudioTracks()[0]);
}

/**
 * Show the microphone's level in `meter` (0…1, ten times a second) until the returned
 * function is called.
 */
export function levelMeter(stream, meter) {
  if (!stream.getAudioTracks().length || !globalThis.AudioContext) return () => {};
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  ctx.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  // A page may not start audio before a click: the first click anywhere resumes it.
  const resume = () => ctx.resume();
  document.addEventListener('click', resume, { once: true });
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const x of samples) sum += x * x;
    // RMS on a log scale: -60 dBFS → 0, 0 dBFS → 1.
    const db = 10 * Math.log10(sum / samples.length || 1e-12);
    meter.value = Math.max(0, Math.min(1, (db + 60) / 60));
  }, 100);
  return () => {
    clearInterval(timer);
    document.removeEventListener('click', resume);
    ctx.close();
    meter.value = 0;
  };
}
