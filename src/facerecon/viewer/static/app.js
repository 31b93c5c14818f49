// facerecon viewer: a rigged face GLB over its input picture, one slider per morph target.
// Coordinates: the GLB's root node turns the camera frame (x right, y down, z forward, metres after
// the 0.001 scale) into three.js world (x right, y up, -z forward), so the sensor sits at the world
// origin looking down -z.
import * as THREE from 'three';
import { OrbitControls } from './vendor/OrbitControls.js';
import { GLTFLoader } from './vendor/GLTFLoader.js';

const $ = (id) => document.getElementById(id);
const state = { ready: false, errors: [], targetNames: [], meshes: [], weights: [] };
window.viewer = state;
window.addEventListener('error', (e) => fail(e.message));
window.addEventListener('unhandledrejection', (e) => fail(String(e.reason)));

function fail(msg) {
    state.errors.push(msg);
    $('status').textContent = state.errors.join('\n');
}

const canvas = $('canvas');
const renderer = new THREE.WebGLRenderer({ canvas, alpha: true, antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(1);
renderer.setClearColor(0x000000, 0);
const scene = new THREE.Scene();
scene.add(new THREE.HemisphereLight(0xffffff, 0x404040, 1.6));
const camera = new THREE.PerspectiveCamera(30, 1, 0.01, 20);
const headLight = new THREE.DirectionalLight(0xffffff, 1.8);
headLight.position.set(0.3, 0.4, 1.0);
camera.add(headLight);
scene.add(camera);
const controls = new OrbitControls(camera, canvas);
controls.addEventListener('change', () => { dirty = true; });

let dirty = true;
let sensor = null; // {fx, fy, cx, cy, width, height} from the GLB's camera
let pictureSize = null;
let current = null; // {root, mixer, action}
let landmarks = null;
const clock = new THREE.Clock();

function resize() {
    const view = $('view');
    const stage = $('stage');
    let w = stage.clientWidth;
    let h = stage.clientHeight;
    if (sensorMode()) { // keep the picture's aspect: the canvas covers exactly the picture
        const a = sensor.width / sensor.height;
        if (w / h > a) w = Math.round(h * a); else h = Math.round(w / a);
    }
    view.style.width = `${w}px`;
    view.style.height = `${h}px`;
    renderer.setSize(w, h, false);
    camera.aspect = w / h;
    applyProjection();
    dirty = true;
}

function sensorMode() {
    return sensor !== null && pictureSize !== null && $('toggle-picture').checked;
}

function applyProjection() {
    camera.updateProjectionMatrix();
    if (sensor && sensorMode()) {
        // the pinhole of the depth sensor, principal point included
        const e = camera.projectionMatrix.elements;
        e[0] = 2 * sensor.fx / sensor.width;
        e[5] = 2 * sensor.fy / sensor.height;
        e[8] = 1 - 2 * sensor.cx / sensor.width;
        e[9] = 2 * sensor.cy / sensor.height - 1;
        camera.projectionMatrixInverse.copy(camera.projectionMatrix).invert();
    }
}

function sensorView() {
    if (!current) return;
    if (!sensorMode()) { fitView(); return; }
    const centre = new THREE.Vector3();
    const face = current.root.getObjectByName('face') || current.root;
    face.getWorldPosition(centre);
    camera.near = 0.01; camera.far = 20;
    camera.position.set(0, 0, 0);
    camera.quaternion.identity();
    controls.target.copy(centre);
    // OrbitControls.update() would turn the camera towards the target; the sensor looks straight down -z
    controls.update();
    camera.position.set(0, 0, 0);
    camera.quaternion.identity();
    resize();
}

// Without the sensor's picture behind it (a bare GLB, or the picture toggled off): frame the whole
// model, whatever its size and place: the bounding sphere fills the view, seen from the sensor's
// side when the GLB has one (else from +z, the face's front), near/far planes from the distance.
function fitView() {
    resize(); // the aspect first
    const box = new THREE.Box3().setFromObject(current.root);
    if (box.isEmpty()) return;
    const sphere = box.getBoundingSphere(new THREE.Sphere());
    const r = Math.max(sphere.radius, 1e-3);
    const halfV = THREE.MathUtils.degToRad(camera.fov) / 2;
    const halfH = Math.atan(Math.tan(halfV) * camera.aspect);
    const dist = 1.1 * r / Math.sin(Math.min(halfV, halfH));
    const dir = sensor && sphere.center.lengthSq() > 1e-8 ? sphere.center.clone().normalize() // sensor at the origin
        : new THREE.Vector3(0, 0, -1);
    camera.position.copy(sphere.center).addScaledVector(dir, -dist);
    camera.near = Math.max(dist - 2 * r, dist / 100);
    camera.far = dist + 4 * r;
    camera.up.set(0, 1, 0);
    controls.target.copy(sphere.center);
    controls.update();
    state.fit = { centre: sphere.center.toArray(), radius: r, distance: dist };
    resize();
}

function setWeights(weights) {
    state.weights = weights.slice();
    for (const m of state.meshes) {
        for (let i = 0; i < weights.length && i < m.morphTargetInfluences.length; i++) m.morphTargetInfluences[i] = weights[i];
    }
    dirty = true;
}

function setMorph(name, value) {
    const i = state.targetNames.indexOf(name);
    if (i < 0) throw new Error(`no morph target ${name}`);
    state.weights[i] = value;
    for (const m of state.meshes) m.morphTargetInfluences[i] = value;
    const input = $(`morph-${name}`);
    if (input) { input.value = value; input.nextElementSibling.textContent = Number(value).toFixed(2); }
    dirty = true;
}

function buildSliders(names, weights) {
    const box = $('sliders');
    box.replaceChildren();
    names.forEach((name, i) => {
        const row = document.createElement('div');
        row.className = 'row';
        const label = document.createElement('label');
        label.textContent = name;
        label.htmlFor = `morph-${name}`;
        const input = document.createElement('input');
        // facerecon clamps weights to ARKit's [0, 1]; a GLB from elsewhere (or an older one) may leave it
        const w = weights[i] ?? 0;
        Object.assign(input, { type: 'range', min: Math.min(0, w), max: Math.max(1, w), step: 0.01, id: `morph-${name}` });
        input.value = w;
        const out = document.createElement('span');
        out.textContent = Number(weights[i] ?? 0).toFixed(2);
        input.addEventListener('input', () => setMorph(name, Number(input.value)));
        row.append(label, input, out);
        box.append(row);
    });
}

function showInfo(pose) {
    const lines = [];
    if (pose) {
        const e = pose.euler_deg || {};
        const t = pose.translation_mm || [];
        if (e.yaw !== undefined) lines.push(`yaw ${e.yaw.toFixed(1)}  pitch ${e.pitch.toFixed(1)}  roll ${e.roll.toFixed(1)} deg`);
        if (t.length === 3) lines.push(`t = (${t.map((v) => v.toFixed(0)).join(', ')}) mm`);
        if (pose.confidence !== undefined) lines.push(`confidence ${pose.confidence.toFixed(2)}`);
        if (pose.method) lines.push(`method ${pose.method}`);
        const tm = pose.timings_ms || {};
        const keys = Object.keys(tm);
        if (keys.length) lines.push('timings (ms):', ...keys.map((k) => `  ${k.padEnd(16)} ${Number(tm[k]).toFixed(1)}`));
    }
    $('info').textContent = lines.join('\n');
}

async function loadLandmarks(url) {
    const doc = await (await fetch(url)).json();
    const pts = doc.landmarks_3d_mm_camera || [];
    const pos = new Float32Array(pts.length * 3);
    // camera frame mm -> world: x, -y, -z in metres (the GLB root's 180 deg about x)
    pts.forEach((p, i) => pos.set([p[0] / 1000, -p[1] / 1000, -p[2] / 1000], 3 * i));
    const g = new THREE.BufferGeometry();
    g.setAttribute('position', new THREE.BufferAttribute(pos, 3));
    const pointsObj = new THREE.Points(g, new THREE.PointsMaterial({ color: 0x33ff66, size: 5, sizeAttenuation: false, depthTest: false }));
    pointsObj.renderOrder = 10;
    pointsObj.visible = $('toggle-landmarks').checked;
    scene.add(pointsObj);
    return pointsObj;
}

async function loadGlb(url) {
    if (current) { scene.remove(current.root); current = null; }
    state.ready = false;
    const gltf = await new GLTFLoader().loadAsync(url);
    const root = gltf.scene;
    scene.add(root);
    state.meshes = [];
    root.traverse((o) => { if (o.isMesh && o.morphTargetInfluences) state.meshes.push(o); });
    // the detail layer: materials with a normal map (the face skin of reconstruct's GLB); the checkbox swaps it in and out
    state.detailMaterials = [];
    root.traverse((o) => {
        if (!o.isMesh) return;
        for (const m of [].concat(o.material)) {
            if (m.normalMap && !state.detailMaterials.includes(m)) { m.userData.detailMap = m.normalMap; state.detailMaterials.push(m); }
        }
    });
    $('toggle-detail').disabled = !state.detailMaterials.length;
    applyDetail();
    const ext = gltf.parser.json;
    const mesh = (ext.meshes || [])[0] || {};
    // either rig (arkit52: ARKit's 52 names; ict: ICT's 55): the names come from the file, one slider each
    state.targetNames = (mesh.extras && mesh.extras.targetNames) || [];
    if (!state.targetNames.length && state.meshes.length) {  // no extras: three.js' dictionary, else the index
        const dict = state.meshes[0].morphTargetDictionary || {};
        state.targetNames = state.meshes[0].morphTargetInfluences.map((_, i) => Object.keys(dict).find((k) => dict[k] === i) ?? `target ${i}`);
    }
    const weights = (mesh.weights || state.targetNames.map(() => 0)).slice();
    const cam = (ext.cameras || [])[0];
    sensor = cam && cam.extras && cam.extras.fx ? cam.extras : null;
    current = { root, mixer: null, action: null };
    if (gltf.animations.length) {
        current.mixer = new THREE.AnimationMixer(root);
        current.action = current.mixer.clipAction(gltf.animations[0]);
        $('play').disabled = false;
        $('play').textContent = 'play';
    } else {
        $('play').disabled = true;
    }
    buildSliders(state.targetNames, weights);
    setWeights(weights);
    $('reset-morphs').onclick = () => { buildSliders(state.targetNames, weights); setWeights(weights); };
    sensorView();
    state.ready = true;
}

function applyDetail() {
    const on = $('toggle-detail').checked;
    for (const m of state.detailMaterials || []) {
        m.normalMap = on ? m.userData.detailMap : null;
        m.needsUpdate = true; // the shader changes with the map (USE_NORMALMAP)
    }
    dirty = true;
}
// For tests: how many materials show the normal map now
state.detailShown = () => (state.detailMaterials || []).filter((m) => m.normalMap).length;

function togglePlay() {
    const c = current;
    if (!c || !c.action) return;
    if (!c.action.isRunning()) {
        c.action.paused = false;
        c.action.play();
        $('play').textContent = 'pause';
    } else {
        c.action.paused = true;
        $('play').textContent = 'play';
        // sliders show where the animation stopped
        const w = state.meshes.length ? Array.from(state.meshes[0].morphTargetInfluences) : [];
        state.targetNames.forEach((n, i) => setMorph(n, w[i]));
    }
    dirty = true;
}

// For tests and scripting: where a world point (metres) lands on the page, in CSS pixels.
state.worldToScreen = (p) => {
    const v = new THREE.Vector3(p[0], p[1], p[2]).project(camera);
    const r = canvas.getBoundingClientRect();
    return [r.left + (v.x + 1) / 2 * r.width, r.top + (1 - v.y) / 2 * r.height];
};
state.cameraToScreen = (p) => state.worldToScreen([p[0] / 1000, -p[1] / 1000, -p[2] / 1000]);
state.setMorph = setMorph;
// the model's bounding box in normalised device coordinates (x, y in -1..1 = on the canvas): [min x, min y, max x, max y]
state.modelNdc = () => {
    const box = new THREE.Box3().setFromObject(current.root);
    const lo = [Infinity, Infinity], hi = [-Infinity, -Infinity];
    for (let i = 0; i < 8; i++) {
        const v = new THREE.Vector3(i & 1 ? box.max.x : box.min.x, i & 2 ? box.max.y : box.min.y, i & 4 ? box.max.z : box.min.z).project(camera);
        lo[0] = Math.min(lo[0], v.x); lo[1] = Math.min(lo[1], v.y); hi[0] = Math.max(hi[0], v.x); hi[1] = Math.max(hi[1], v.y);
    }
    return [lo[0], lo[1], hi[0], hi[1]];
};
state.render = () => { renderer.render(scene, camera); dirty = false; };
state.frames = 0;

function loop() {
    requestAnimationFrame(loop);
    const dt = clock.getDelta();
    if (current && current.mixer && current.action && current.action.isRunning()) {
        current.mixer.update(dt);
        dirty = true;
    }
    if (dirty) { renderer.render(scene, camera); dirty = false; state.frames++; }
}

async function main() {
    const manifest = await (await fetch('manifest.json')).json();
    const select = $('glb');
    for (const g of manifest.glbs) {
        const o = document.createElement('option');
        o.value = g; o.textContent = decodeURIComponent(g.split('/').pop());
        select.append(o);
    }
    select.onchange = () => loadGlb(select.value).catch((e) => fail(`cannot load ${select.value}: ${e.message || e}`));
    if (manifest.picture) {
        const img = $('picture');
        await new Promise((resolve) => {
            img.onload = () => { pictureSize = [img.naturalWidth, img.naturalHeight]; resolve(); };
            img.onerror = () => { fail(`cannot load ${manifest.picture}`); resolve(); };
            img.src = manifest.picture;
        });
        $('thumb').src = manifest.picture;
    } else {
        $('toggle-picture').checked = false;
        $('toggle-picture').disabled = true;
    }
    if (manifest.residual) {
        $('toggle-residual').disabled = false;
        $('residual').src = manifest.residual;
    }
    $('toggle-residual').onchange = (e) => { $('residual').style.display = e.target.checked ? 'block' : 'none'; };
    if (manifest.landmarks) landmarks = await loadLandmarks(manifest.landmarks);
    else $('toggle-landmarks').disabled = true;
    $('toggle-landmarks').onchange = (e) => { if (landmarks) { landmarks.visible = e.target.checked; dirty = true; } };
    if (manifest.pose) showInfo(await (await fetch(manifest.pose)).json());
    $('toggle-detail').onchange = applyDetail;
    $('play').onclick = togglePlay;
    $('sensor-view').onclick = sensorView;
    window.addEventListener('resize', resize);
    await loadGlb(manifest.glbs[0]);
    const updatePicture = () => {
        const aligned = sensorMode() && pictureSize[0] === sensor.width && pictureSize[1] === sensor.height;
        // the picture goes behind the mesh only where the GLB knows the sensor that took it
        $('picture').style.display = aligned ? 'block' : 'none';
        $('view').classList.toggle('sensor', aligned);
        $('thumb').style.display = manifest.picture && !aligned ? 'block' : 'none';
        sensorView(); // through the sensor with the picture, else the whole model framed
    };
    $('toggle-picture').onchange = updatePicture;
    updatePicture();
    loop();
}

main().catch((e) => fail(`viewer failed: ${e.message || e}`));
